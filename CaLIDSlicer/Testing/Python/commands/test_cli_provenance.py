"""The ``.calid.json`` of a real CLI run names the models (with the SHA-256 of the files on disk), device and stage times."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import calid
from calid.cli import main


def sha256_on_disk(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("phantom") / "sparse.nii.gz"
    assert main(["phantom", "-o", str(path), "--3d", "--slices", "4", "--size", "48"]) == 0
    return path


def test_calid_run_with_segmentation_names_every_model_it_loaded(phantom, tmp_path):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    out = tmp_path / "dense.nii.gz"
    assert main(["reconstruct", str(phantom), "-o", str(out), "--method", "calid", "--device", "cpu",
                 "--segment", str(tmp_path / "dense.seg.nrrd"), "--progress", "none"]) == 0
    report = json.loads((tmp_path / "dense.calid.json").read_text())
    kinds = [m["kind"] for m in report["models"]]
    assert kinds == ["denoiser", "vae", "segmenter"]
    for model in report["models"]:
        config = json.loads((Path(model["path"]).parent / "config.json").read_text())
        assert (model["name"], model["version"]) == (config["name"], config["version"])
        assert model["sha256"] == sha256_on_disk(model["path"])
    assert report["models"][0]["name"] == rec.DEFAULT_MODEL
    assert report["calid_version"] == calid.__version__
    assert report["device"]["type"] == "cpu" and report["device"]["name"] and report["device"]["torch"]
    assert report["sampler"]["steps"] == rec.DEFAULT_STEPS
    stages = report["stage_seconds"]
    assert list(stages) == ["read", "load", "encode", "register", "sample", "decode", "segment", "write"]
    assert all(seconds > 0 for seconds in stages.values())
    assert sum(stages.values()) - stages["segment"] - stages["read"] - stages["write"] <= report["seconds"]


def test_baseline_run_lists_no_models(phantom, tmp_path):
    out = tmp_path / "dense.nii.gz"
    assert main(["reconstruct", str(phantom), "-o", str(out), "--method", "linear", "--progress", "none"]) == 0
    report = json.loads((tmp_path / "dense.calid.json").read_text())
    assert report["models"] == [] and report["sampler"] == {}
    assert report["device"]["type"] == "cpu" and report["calid_version"] == calid.__version__
    assert list(report["stage_seconds"]) == ["read", "interpolate (linear)", "write"]
