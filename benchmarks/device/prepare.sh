#!/usr/bin/env bash
# Prepare the lent-GPU run (issue 17), here, where pip and ../shared/data are reachable:
#   1. the wheels the device lacks into .whl/ (MONAI: pure Python; SimpleITK, 50 MiB, stays out of the GPU path),
#   2. the compact training set into devdata/ (train-split heart crops; derived from ACDC, never committed),
#   3. the carried-files budget: the working tree that travels + .whl + devdata, under 64 MiB.
# Then call the device tool with carry [".whl", "devdata"] and command "bash benchmarks/device/run.sh".
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
DATA=${DATA:-../shared/data}
MONAI=$($PY -c "import monai; print(monai.__version__)")
mkdir -p .whl
if ! ls .whl/monai-"$MONAI"-*.whl >/dev/null 2>&1; then
  rm -f .whl/monai-*.whl  # one version of each wheel, or the install there stops
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "monai==$MONAI"
fi
if [ ! -f devdata/trainset.json ] || [ "${REBUILD:-0}" = 1 ]; then
  PYTHONPATH=CaLIDSlicer $PY -m calid export-trainset --data "$DATA" --out devdata --size 96
fi
ls -la .whl devdata
$PY benchmarks/device/budget.py .whl devdata
