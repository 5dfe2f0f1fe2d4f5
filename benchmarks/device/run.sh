#!/usr/bin/env bash
# The prepared GPU run of issue 17: one call of at most about 8 minutes on a lent H200.
#
#   here:   bash benchmarks/device/prepare.sh      (wheels, devdata/, budget under 64 MiB)
#   device: run(command="bash benchmarks/device/run.sh", carry=[".whl", "devdata"], timeout_s=570)
#   CPU rehearsal: OUT=/tmp/out bash benchmarks/device/run.sh --dry-run   (tiny sizes, 2 training steps, no GPU)
#
# Stages: check the GPU, the gpu-marked tests (CUDA vs CPU, bf16 within 1e-2), calid bench on CUDA
# (3D x4 10x256x256, cine x2 12x20x256x256: calid and the pixel-space comparator at equal steps, per
# stage, peak GPU memory; then the 5-frame cut of the 512² x 30 large study), then training of the
# large autoencoder and denoiser until the deadline. Everything lands in $OUT (at most 8 files of
# at most 16 MiB): run.log, tests.log, bench.json, vae-KofN / denoiser-KofN.safetensors (checkpoint
# parts: python -m calid.train.pack unpack DIR NAME RUN_DIR, then calid train ... --resume).
# CaLID runs unguided there (--guide none): the demons guide needs SimpleITK (a 50 MiB wheel, over the
# 64 MiB carry), so the "register" stage is not timed on the GPU.
#
# Knobs (environment): BUDGET_S (whole script, default 470; 1800 for --dry-run), STAGES (default "env tests bench train"),
# DATA (training set, default devdata), RUN (working folder, default runs/device), PARTS (checkpoint parts
# to start from when RUN holds none, default devckpt), STEPS (schedule length), PYTHON.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
: "${OUT:?set OUT to the folder whose files come back (the device tool sets it)}"
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-$([ "$DRY" = 1 ] && echo 1800 || echo 470)}  # a rehearsal is not bound by the lease
STAGES=${STAGES:-env tests bench train}
DATA=${DATA:-devdata}
RUN=${RUN:-runs/device}
PARTS=${PARTS:-devckpt}  # checkpoint parts carried to a fresh machine (resume.sh), if any
LOG=$OUT/run.log
START=$SECONDS
export PYTHONUNBUFFERED=1
mkdir -p "$RUN"

say() { echo "== +$((SECONDS - START))s $*" | tee -a "$LOG"; }
left() { echo $((BUDGET_S - (SECONDS - START))); }
has() { [[ " $STAGES " == *" $1 "* ]]; }
cap() { local c=$1 l; l=$(( $(left) - 60 )); [ "$l" -lt "$c" ] && c=$l; [ "$c" -lt 10 ] && c=10; echo "$c"; }  # a stage's timeout

if [ "$DRY" = 1 ]; then  # every Python started here refuses SimpleITK, nibabel, nrrd, slicerio, as the device lacks them
  export PYTHONPATH=$ROOT/benchmarks/device/without_itk:$ROOT/CaLIDSlicer${PYTHONPATH:+:$PYTHONPATH}
  DEV=cpu; TINY_BENCH=(--size 16 --frames 2 --repeats 1); STEPS=${STEPS:-2}; THREADS=(--threads 1)
  VAE_SHAPE=(--batch 2 --crop 32); DEN_SHAPE=(--batch 2 --crop 32)
else
  if ls .whl/*.whl >/dev/null 2>&1; then  # the device README's line, then the engine on the path
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site || exit
  fi
  export PYTHONPATH=$ROOT/CaLIDSlicer${PYTHONPATH:+:$PYTHONPATH}
  DEV=cuda; TINY_BENCH=(); STEPS=${STEPS:-20000}; THREADS=()
  VAE_SHAPE=(--batch 32 --crop 64); DEN_SHAPE=(--batch 64 --crop 96)
fi
say "start: dry-run=$DRY device=$DEV budget=${BUDGET_S}s stages='$STAGES' data=$DATA"

if has env; then
  say "environment"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG"
  $PY -m calid env 2>&1 | tee -a "$LOG"
  if [ "$DRY" = 0 ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    say "torch sees no CUDA GPU: nothing to measure here"; exit 3
  fi
fi

if has tests; then
  say "gpu tests (CUDA vs CPU; bf16 within 1e-2 relative)"
  MARK=(); [ "$DRY" = 1 ] && MARK=(-m gpu)  # the CPU bf16 check is run by the test suite here anyway
  timeout $(cap 200) $PY -m pytest CaLIDSlicer/Testing/Python/models/test_gpu.py "${MARK[@]}" -q -rA -p no:cacheprovider \
    >"$OUT/tests.log" 2>&1
  say "tests exit status $? (tests.log): $(tail -n 1 "$OUT/tests.log")"
fi

if has bench; then
  say "bench: 3d x4 and cine x2, calid vs pixel-space at equal steps, unguided, .npy io"
  timeout $(cap 240) $PY -m calid bench --device $DEV --cases 3d,cine --methods calid,pixel-diffusion --guide none --io npy \
    --repeats 3 "${TINY_BENCH[@]}" --json "$RUN/bench_main.json" 2>&1 | tee -a "$LOG"
  say "bench: large study, 5-frame cut of 512² x 30 slices (x2, calid only, one timed run)"
  timeout $(cap 150) $PY -m calid bench --device $DEV --cases large --methods calid --guide none --io npy --repeats 1 \
    "${TINY_BENCH[@]}" --json "$RUN/bench_large.json" 2>&1 | tee -a "$LOG"
  $PY - "$OUT/bench.json" "$RUN/bench_main.json" "$RUN/bench_large.json" <<'PYEOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
parts = [json.loads(Path(p).read_text()) for p in sys.argv[2:] if Path(p).is_file()]
if parts:
    merged = {**parts[0], "rows": [r for p in parts for r in p["rows"]], "ratios": [r for p in parts for r in p["ratios"]],
              "settings": [p["settings"] for p in parts]}
    Path(sys.argv[1]).write_text(json.dumps(merged, indent=2) + "\n")
print(f"bench.json: {sum(len(p['rows']) for p in parts)} rows from {len(parts)} runs")
PYEOF
fi

train_one() {  # NAME SECONDS ARGS...: train until the deadline, resuming what this folder (or devckpt/) holds
  local name=$1 seconds=$2; shift 2
  local dir=$RUN/$name resume=()
  if [ ! -f "$dir/checkpoint.json" ] && ls "$PARTS/$name"-1of*.safetensors >/dev/null 2>&1; then
    $PY -m calid.train.pack unpack "$PARTS" "$name" "$dir" 2>&1 | tee -a "$LOG"
  fi
  [ -f "$dir/checkpoint.json" ] && resume=(--resume)
  local minutes; minutes=$(awk "BEGIN { m = $seconds / 60; print (m < 0.1 ? 0.1 : m) }")
  say "train $name for ${minutes} min: calid train $name --data $DATA --out $dir $* ${resume[*]}"
  timeout $((seconds + 120)) $PY -m calid train "$name" --data "$DATA" --out "$dir" --cache-dir "$RUN/cache" --device $DEV \
    --steps "$STEPS" --minutes "$minutes" "${THREADS[@]}" "${resume[@]}" "$@" 2>&1 | tee -a "$LOG"
  $PY -m calid.train.pack pack "$dir" "$OUT" "$name" 2>&1 | tee -a "$LOG"
}

if has train; then
  RESERVE_S=40   # packing, the file listing, and the end of the call
  CALL_S=35      # one training call's start and model export, outside --minutes
  if [ "$DRY" = 1 ]; then VAE_S=30; else VAE_S=$(( ($(left) - RESERVE_S) * 35 / 100 - CALL_S )); fi
  if [ "$VAE_S" -ge 20 ]; then
    train_one vae "$VAE_S" --channels 64,128,128 "${VAE_SHAPE[@]}"
  else
    say "too little time left to train the autoencoder (${VAE_S}s)"
  fi
  if [ "$DRY" = 1 ]; then DEN_S=30; else DEN_S=$(( $(left) - RESERVE_S - CALL_S )); fi
  if [ "$DEN_S" -ge 20 ]; then
    train_one denoiser "$DEN_S" --channels 64,128,192 --objective trajectory "${DEN_SHAPE[@]}"
  else
    say "too little time left to train the denoiser (${DEN_S}s)"
  fi
fi

say "files in \$OUT (at most 8, 16 MiB each, 64 MiB together):"
$PY - "$OUT" <<'PYEOF' 2>&1 | tee -a "$LOG"
import sys
from pathlib import Path
files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file())
for p in files:
    print(f"  {p.name:<34} {p.stat().st_size / 2**20:8.2f} MiB")
total = sum(p.stat().st_size for p in files) / 2**20
over = len(files) > 8 or total > 64 or any(p.stat().st_size > 16 * 2**20 for p in files)
print(f"  {len(files)} files, {total:.2f} MiB: {'OVER the return limits' if over else 'within the return limits'}")
PYEOF
say "done in $((SECONDS - START))s of ${BUDGET_S}s"
