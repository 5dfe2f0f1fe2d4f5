"""The ``calid evaluate`` JSON names, per method, the models used (SHA-256 of the files on disk), device and stage times."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import calid
from calid import cli


def test_evaluate_json_has_provenance_per_method(tmp_path):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    out = tmp_path / "phantom.json"
    assert cli.main(["evaluate", "phantom", "--methods", "linear,calid", "--phantom-count", "2", "--phantom-size", "48",
                     "--device", "cpu", "--progress", "none", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    linear, diffusion = record["provenance"]["linear"], record["provenance"]["calid"]
    # linear itself uses no network; the segmenter behind its Dice scores is listed
    assert [m["kind"] for m in linear["models"]] == ["segmenter"]
    assert linear["sampler"] == {} and linear["reconstructions"] == 2
    assert list(linear["stage_seconds"]) == ["interpolate (linear)", "segment"]  # the phantom has labels: Dice ran
    assert [m["kind"] for m in diffusion["models"]] == ["denoiser", "vae", "segmenter"]
    for model in linear["models"] + diffusion["models"]:
        assert model["sha256"] == hashlib.sha256(Path(model["path"]).read_bytes()).hexdigest()
    assert list(diffusion["stage_seconds"]) == ["load", "encode", "register", "sample", "decode", "segment"]
    assert diffusion["sampler"]["steps"] == rec.DEFAULT_STEPS and diffusion["reconstructions"] == 2
    for method in (linear, diffusion):
        assert method["calid_version"] == calid.__version__ and method["device"]["type"] == "cpu"
    # stage times are each method's own, not the evaluation's running total
    assert "sample" not in linear["stage_seconds"] and "interpolate (linear)" not in diffusion["stage_seconds"]
    seconds = {s["method"]: s["seconds"] for s in record["summary"]}
    reconstruct_seconds = sum(v for k, v in diffusion["stage_seconds"].items() if k != "segment")
    assert reconstruct_seconds <= 2 * seconds["calid"] * 1.01  # the stages lie within the timed reconstructions
