"""The prepared GPU run (benchmarks/device/): rehearsed on the CPU, its pieces checked one by one.

No GPU is needed: the script's --dry-run runs every stage at tiny sizes with SimpleITK, nibabel,
nrrd and slicerio refused at import (as on the lent machine), and the files it leaves must fit
what a device call returns (at most 8 files of 16 MiB, 64 MiB together).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT

DEVICE = REPO_ROOT / "benchmarks" / "device"
BLOCKER = DEVICE / "without_itk"
#: What prepare.sh carries besides the working tree, as measured: devdata 19.50 MiB + the MONAI wheel 1.60 MiB.
CARRIED_MIB = 21.1


def blocked_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{BLOCKER}{os.pathsep}{REPO_ROOT / 'CaLIDSlicer'}", **extra}


def tiny_trainset(folder: Path, stacks: int = 4, slices: int = 6, size: int = 32) -> Path:
    from calid.train.trainset import save_trainset

    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 200, (slices, size, size), dtype=np.uint8) for _ in range(stacks)]
    meta = [{"source": f"synthetic#{i}", "split": "train" if i else "val", "slice_spacing": 10.0, "start": i * slices,
             "count": slices} for i in range(stacks)]
    save_trainset(folder, parts, meta, note="synthetic")
    return folder


def test_gpu_path_imports_without_imaging_packages():
    """Everything run.sh runs imports with SimpleITK & co. refused, and loads no file reader; calid.io.read_write
    (which needs SimpleITK) is refused, so the block bites."""
    code = """
import importlib, sys
for name in ("calid.cli", "calid.evaluation.bench", "calid.commands.bench", "calid.methods.reconstruction",
             "calid.methods.calid_fill", "calid.methods.calid_codec", "calid.methods.pixel_diffusion", "calid.io.paths",
             "calid.models.vae", "calid.models.denoiser", "calid.models.temporal", "calid.models.accel",
             "calid.train.vae_run", "calid.train.denoiser_run", "calid.train.pack", "calid.train.trainset", "calid.commands.env"):
    importlib.import_module(name)
from calid.cli import build_parser
build_parser()
print("loaded:", sorted(n for n in sys.modules if n.startswith("calid.io.")))
try:
    import calid.io.read_write
except ModuleNotFoundError as err:
    print("refused:", err.name)
"""
    done = subprocess.run([sys.executable, "-c", code], env=blocked_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "refused: SimpleITK" in done.stdout
    loaded = done.stdout.split("loaded:", 1)[1].splitlines()[0]
    assert "read_write" not in loaded and "dicom" not in loaded and "slicer_files" not in loaded, loaded


def test_budget_leaves_room_for_the_carried_files():
    if subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=REPO_ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: the budget counts what git would send")
    done = subprocess.run([sys.executable, str(DEVICE / "budget.py")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    total = float(re.search(r"total that travels\s+([\d.]+) MiB", done.stdout).group(1))
    assert total + CARRIED_MIB < 64, f"the working tree ({total:.1f} MiB) leaves no room for devdata and the wheels"


def test_trainset_round_trip_and_training_reads_it(tmp_path):
    from calid.train.data import cached_stacks
    from calid.train.trainset import QUANTUM, crop_square, load_trainset

    folder = tiny_trainset(tmp_path / "set")
    stacks = cached_stacks([str(folder)], "train", tmp_path / "cache")
    assert len(stacks) == 3 and len(load_trainset([folder], "val")) == 1 and load_trainset([folder], "test") == []
    assert stacks[0].slices.dtype == np.float16 and stacks[0].slices.shape == (6, 32, 32)
    assert float(stacks[0].slices.max()) <= 255 * QUANTUM + 1e-2
    image = np.arange(10 * 12, dtype=np.float32).reshape(1, 10, 12)
    crop = crop_square(image, (0, 11), 8)  # near a corner: shifted inside the image
    assert np.array_equal(crop[0], image[0, 0:8, 4:12])
    assert crop_square(image, (5, 6), 16).shape == (1, 16, 16)  # larger than the image: zero-padded


def test_checkpoint_parts_round_trip(tmp_path):
    from calid.train.checkpoint import load_checkpoint, save_checkpoint
    from calid.train.pack import pack, unpack

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3), torch.nn.Conv2d(64, 128, 3))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.rand(2, 1, 8, 8)).mean().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "run", model, optimizer, {"step": 7, "seed": 0})
    parts = pack(tmp_path / "run", tmp_path / "out", "net", max_bytes=400_000)
    assert len(parts) > 1 and all(p.stat().st_size <= 400_000 for p in parts)
    assert unpack(tmp_path / "out", "net", tmp_path / "back") == 7
    restored = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3), torch.nn.Conv2d(64, 128, 3))
    restored_optimizer = torch.optim.AdamW(restored.parameters())
    assert load_checkpoint(tmp_path / "back", restored, restored_optimizer)["step"] == 7
    for a, b in zip(model.parameters(), restored.parameters()):
        assert torch.equal(a, b)  # weights travel exactly; Adam moments as bf16
        moment, back = optimizer.state[a]["exp_avg"], restored_optimizer.state[b]["exp_avg"]
        assert torch.allclose(moment, back, rtol=1e-2, atol=1e-12)
    parts[-1].unlink()
    with pytest.raises(ValueError, match="parts"):
        unpack(tmp_path / "out", "net", tmp_path / "again")


def test_training_stops_at_its_deadline_with_a_checkpoint(tmp_path):
    from calid.train.distributed import DistributedContext
    from calid.train.loop import LoopSettings, train

    model = torch.nn.Linear(4, 1)
    batch = torch.rand(8, 4)
    losses = train(model, lambda _: batch, lambda net, b: (net(b).pow(2).mean(), {}),
                   LoopSettings(steps=1000, minutes=0.0), DistributedContext(0, 1, torch.device("cpu")), tmp_path, seed=0)
    assert len(losses) == 1
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 1


@pytest.mark.slow
def test_device_script_rehearsed_on_cpu(tmp_path):
    """run.sh --dry-run: every stage runs without SimpleITK & co., and what it leaves fits a device call's return."""
    out = tmp_path / "out"
    env = blocked_env(OUT=str(out), DATA=str(tiny_trainset(tmp_path / "set")), RUN=str(tmp_path / "run"), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(DEVICE / "run.sh"), "--dry-run"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"run.log", "tests.log", "bench.json", "vae-1of1.safetensors"} <= names
    assert any(n.startswith("denoiser-1of") for n in names)
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in files)
    assert sum(p.stat().st_size for p in files) <= 64 * 2**20
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)
    bench = json.loads((out / "bench.json").read_text())
    rows = {(r["case"], r["method"]) for r in bench["rows"]}
    assert rows == {("3d", "calid"), ("3d", "pixel-diffusion"), ("cine", "calid"), ("cine", "pixel-diffusion"), ("large", "calid")}
    assert all("sample" in r["median_seconds"] for r in bench["rows"]) and bench["ratios"]
    assert "register" not in bench["cpu_stages"]  # unguided: no SimpleITK stage
    log = (out / "run.log").read_text()
    assert "tests exit status 0" in log and "within the return limits" in log
    assert re.search(r'"step": 2\b', log)
    from calid.train.pack import unpack

    assert unpack(out, "denoiser", tmp_path / "resumed") == 2  # what comes back resumes on the CPU


@pytest.mark.data
@pytest.mark.slow
def test_export_trainset_takes_train_patients_only(shared_data, tmp_path):
    from calid.cli import main
    from calid.evaluation.splits import split_of
    from calid.train.trainset import load_trainset

    assert main(["export-trainset", "--data", str(shared_data), "--out", str(tmp_path / "set"), "--size", "64",
                 "--frame-step", "30"]) == 0
    manifest = json.loads((tmp_path / "set" / "trainset.json").read_text())
    assert manifest["stacks"] and all(split_of(item["source"]) == "train" for item in manifest["stacks"])
    assert {item["source"].split("/")[0] for item in manifest["stacks"]} == {"acdc", "acdc_cine"}  # Sunnybrook is test only
    stacks = load_trainset([tmp_path / "set"], "train")
    assert all(s.slices.shape[1:] == (64, 64) for s in stacks)
    assert np.mean([float(s.slices.mean()) for s in stacks]) > 0.1  # crops hold the heart, not empty background
