"""``calid reconstruct``: every check before the work starts, and all outputs or none (issue 18.2)."""

from __future__ import annotations

import json
from collections import namedtuple

import numpy as np
import pytest
import torch

from calid.cli import main
from calid.io.read_write import read, write

TINY = {"channels": [4, 8], "strides": [2], "num_res_units": 0, "pixel_size": 2.0, "window": 8}


@pytest.fixture
def tiny_segmenter(tmp_path, monkeypatch):
    """A randomly initialised segmenter under the default name, found via CALID_MODEL_DIR."""
    from calid.models.segmenter import SliceSegmenter
    from calid.models.format import ModelConfig, save_model
    from calid.segmentation.inference import DEFAULT_MODEL

    torch.manual_seed(0)
    config = ModelConfig(DEFAULT_MODEL, "0.0.0", "segmenter", "calid-segmenter", kwargs=TINY)
    save_model(SliceSegmenter(**TINY), config, tmp_path / "models" / DEFAULT_MODEL, "# tiny test model")
    monkeypatch.setenv("CALID_MODEL_DIR", str(tmp_path / "models"))


@pytest.fixture
def no_work(monkeypatch):
    """Make the reconstruction itself fail loudly: a refusal must come before it."""
    import calid.methods.reconstruction as reconstruction

    def refuse(*args, **kwargs):
        raise AssertionError("the reconstruction started before the checks refused the run")

    monkeypatch.setattr(reconstruction, "reconstruct", refuse)


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "models")


def _run(source, *extra) -> int:
    return main(["reconstruct", str(source), "--factor", "2", "--method", "linear", "--progress", "none", *extra])


def test_cine_into_seg_nrrd_is_refused_before_the_work_with_a_remedy_the_cli_offers(tmp_path, oblique_cine, no_work, capsys):
    source = write(oblique_cine, tmp_path / "cine.nii.gz")
    code = _run(source, "-o", str(tmp_path / "dense.nii.gz"), "--segment", str(tmp_path / "labels.seg.nrrd"))
    assert code == 2
    err = capsys.readouterr().err
    assert "labels.seg.nrrd" in err and ".nii.gz" in err and "one frame at a time" not in err
    assert _files(tmp_path) == ["cine.nii.gz"]


@pytest.mark.parametrize("extra", [[], ["--samples", "1"]])
def test_uncertainty_without_samples_is_refused_before_the_work(tmp_path, oblique_stack, no_work, capsys, extra):
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    code = main(["reconstruct", str(source), "-o", str(tmp_path / "dense.nrrd"), "--factor", "2", "--progress", "none",
                 "--method", "calid", "--uncertainty", str(tmp_path / "std.nrrd"), *extra])
    assert code == 2
    assert "--samples 2" in capsys.readouterr().err
    assert _files(tmp_path) == ["sparse.nrrd"]


def test_uncertainty_with_a_baseline_is_refused_before_the_work(tmp_path, oblique_stack, no_work, capsys):
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    assert _run(source, "-o", str(tmp_path / "dense.nrrd"), "--uncertainty", str(tmp_path / "std.nrrd")) == 2
    assert "--method calid" in capsys.readouterr().err


@pytest.mark.parametrize("option, name", [("-o", "dense.png"), ("-o", "dense.nrrd"), ("-o", "dense.seg.nrrd"),
                                          ("--segment", "labels.mha"), ("--report", "dense.txt")])
def test_output_formats_are_checked_before_the_work(tmp_path, oblique_cine, no_work, capsys, option, name):
    source = write(oblique_cine, tmp_path / "cine.nii.gz")
    outputs = {"-o": str(tmp_path / "dense.nii.gz"), option: str(tmp_path / name)}
    code = _run(source, *[item for pair in outputs.items() for item in pair])
    assert code == 2
    assert name in capsys.readouterr().err
    assert _files(tmp_path) == ["cine.nii.gz"]


def test_too_little_free_disk_space_is_refused_before_the_work(tmp_path, oblique_stack, no_work, monkeypatch, capsys):
    import shutil

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10_000, 9_000, 1_000))
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    assert _run(source, "-o", str(tmp_path / "dense.nrrd")) == 2
    err = capsys.readouterr().err
    assert "free" in err and str(tmp_path) in err
    assert _files(tmp_path) == ["sparse.nrrd"]


def test_a_failure_after_the_work_started_leaves_no_output(tmp_path, oblique_stack, tiny_segmenter, monkeypatch, capsys):
    import calid.io.read_write as read_write
    from calid.errors import OutputError

    real = read_write.write_segmentation

    def broken(labels, path, *args, **kwargs):
        real(labels, path, *args, **kwargs)  # the file is made, then the disk "fills up"
        raise OutputError("disk full (simulated)")

    monkeypatch.setattr(read_write, "write_segmentation", broken)
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    code = _run(source, "-o", str(tmp_path / "dense.nrrd"), "--segment", str(tmp_path / "labels.seg.nrrd"))
    assert code == 2
    assert "simulated" in capsys.readouterr().err
    assert _files(tmp_path) == ["sparse.nrrd"]


def test_every_output_is_whole_and_no_temporary_file_is_left(tmp_path, oblique_stack, tiny_segmenter):
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    assert _run(source, "-o", str(tmp_path / "dense.nrrd"), "--segment", str(tmp_path / "labels.seg.nrrd")) == 0
    assert _files(tmp_path) == ["dense.calid.json", "dense.nrrd", "dense.qc.png", "labels.seg.nrrd", "sparse.nrrd"]
    report = json.loads((tmp_path / "dense.calid.json").read_text())
    assert report["output"] == str(tmp_path / "dense.nrrd")


def test_a_cine_segmentation_is_written_as_a_4d_labelmap(tmp_path, oblique_cine, tiny_segmenter):
    source = write(oblique_cine, tmp_path / "cine.nii.gz")
    assert _run(source, "-o", str(tmp_path / "dense.nii.gz"), "--segment", str(tmp_path / "labels.nii.gz")) == 0
    labels, dense = read(tmp_path / "labels.nii.gz"), read(tmp_path / "dense.nii.gz")
    assert labels.is_cine and labels.array.shape == dense.array.shape
    assert np.issubdtype(labels.array.dtype, np.integer) and labels.same_geometry(dense)
    assert _files(tmp_path) == ["cine.nii.gz", "dense.calid.json", "dense.nii.gz", "dense.qc.png", "labels.nii.gz"]
