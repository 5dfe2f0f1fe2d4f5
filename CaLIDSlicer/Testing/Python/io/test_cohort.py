"""Cohort mode of ``calid reconstruct``: folders and manifests, resume, shards, failures isolated."""

from __future__ import annotations

import json

import pytest

from calid.cli import main
from calid.io.cohort import parse_shard
from calid.errors import InputError
from calid.io.read_write import read, write


@pytest.fixture
def cohort(tmp_path, oblique_stack):
    folder = tmp_path / "studies"
    folder.mkdir()
    for name in ("a", "b", "c"):
        write(oblique_stack, folder / f"{name}.nrrd")
    (folder / "broken.nii.gz").write_bytes(b"not a nifti file")
    return folder


def _run(folder, out, *extra):
    return main(["reconstruct", str(folder), "-o", str(out), "--cohort", "--factor", "2", "--method", "linear",
                 "--progress", "none", *extra])


def test_folder_cohort_isolates_failures_and_resumes(cohort, tmp_path, oblique_stack, capsys):
    out = tmp_path / "dense"
    assert _run(cohort, out) == 1  # one broken study
    summary = json.loads((out / "cohort_summary_0of1.json").read_text())
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 1}
    assert "broken.nii.gz" in [c for c in summary["cases"] if c["status"] == "failed"][0]["source"]
    assert read(out / "a_dense.nii.gz").n_slices == 2 * oblique_stack.n_slices - 1
    assert (out / "a_dense.calid.json").exists()
    (out / "b_dense.calid.json").unlink()  # as if b had been interrupted before its report
    capsys.readouterr()
    assert _run(cohort, out) == 1
    summary = json.loads((out / "cohort_summary_0of1.json").read_text())
    assert summary["counts"] == {"done": 1, "skipped": 2, "failed": 1}


def test_manifest_and_shards(cohort, tmp_path):
    manifest = tmp_path / "cases.csv"
    manifest.write_text("input,output\nstudies/a.nrrd,first.nii.gz\nstudies/b.nrrd,\nstudies/c.nrrd,\n")
    out = tmp_path / "dense"
    assert main(["reconstruct", str(manifest), "-o", str(out), "--factor", "2", "--method", "linear",
                 "--shard", "0/2", "--progress", "none"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["c_dense.nii.gz", "first.nii.gz"]


def test_shard_parsing():
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(InputError, match="I/N"):
        parse_shard("x")
    with pytest.raises(InputError, match="shard index"):
        parse_shard("4/4")


def test_cohort_refuses_single_file_options(cohort, tmp_path, capsys):
    assert _run(cohort, tmp_path / "dense", "--segment", str(tmp_path / "s.seg.nrrd")) == 2
    assert "do not apply to a cohort" in capsys.readouterr().err
