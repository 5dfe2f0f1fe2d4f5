"""A plain ``pip install .`` (a wheel, not editable) is as complete as a clone: models, registry, demo.

Builds the wheel from the checkout's files, installs it into a fresh venv that borrows this
interpreter's packages (no network), and runs the installed ``calid`` from a folder outside
the repository with an empty model cache, so only the wheel's own models can be found.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO_ROOT

MODELS = REPO_ROOT / "CaLIDSlicer" / "Resources" / "Models"


def _run(args: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _checkout_copy(target: Path) -> Path:
    """The checkout's tracked and unignored files (no build/, .venv/ or egg-info from earlier builds)."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the files a wheel is built from")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
    return target


def _venv_with_borrowed_packages(folder: Path) -> Path:
    """A venv whose own site-packages comes first, then this interpreter's (torch, MONAI, ...) without its .pth files."""
    _run([sys.executable, "-m", "venv", "--without-pip", folder], folder.parent)
    python = folder / "bin" / "python"
    own = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], folder).strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(own) / "_borrowed_packages.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    return python


@pytest.mark.slow
def test_wheel_carries_the_models_and_the_demo_uses_calid(tmp_path):
    pytest.importorskip("setuptools", minversion="70.1", reason="building a wheel offline needs setuptools >= 70.1")
    source = _checkout_copy(tmp_path / "src")
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp_path / "dist"], source)
    (wheel,) = (tmp_path / "dist").glob("calid-*.whl")
    python = _venv_with_borrowed_packages(tmp_path / "venv")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "CALID_MODEL_DIR")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # no user-cache models either
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], tmp_path, env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    calid = tmp_path / "venv" / "bin" / "calid"
    where = _run([python, "-c", "import calid; print(calid.__file__)"], work, env)
    assert str(tmp_path / "venv") in where, f"calid was imported from {where}, not the installed wheel"

    registry = json.loads((MODELS / "models.json").read_text())["models"]
    listing = {row["name"]: row for row in json.loads(_run([calid, "models", "list", "--json"], work, env))}
    for entry in registry:
        row = listing[entry["name"]]
        assert row["installed"] and str(tmp_path / "venv") in row["path"], row
        if entry["sha256"] is not None:
            weights = Path(row["path"]) / "model.safetensors"
            assert hashlib.sha256(weights.read_bytes()).hexdigest() == entry["sha256"]
    fetch = subprocess.run([calid, "models", "fetch", registry[0]["name"]], cwd=work, env=env, capture_output=True,
                           text=True, timeout=120)
    assert "not in the registry" not in fetch.stderr and "bundled" in fetch.stderr, fetch.stderr

    printed = _run([calid, "demo", "-o", "demo", "--frames", "2", "--slices", "3", "--factor", "2",
                    "--progress", "none"], work, env)
    assert " with calid" in printed and "registration" not in printed, printed
    report = json.loads((work / "demo" / "reconstruction.calid.json").read_text())
    assert str(report.get("method", "")).startswith("calid"), report.get("method")
    _run([calid, "segment", "demo/reconstruction.nii.gz", "-o", "labels.nii.gz", "--no-flips", "--progress", "none"],
         work, env)
    assert (work / "labels.nii.gz").stat().st_size > 0
