"""``calid info`` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from calid.cli import main
from calid.io.read_write import write


def test_info_json_describes_a_cine(tmp_path, oblique_cine, capsys):
    path = write(oblique_cine.replace(synthesized=(1, 3)), tmp_path / "cine.seq.nrrd")
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "cine" and info["axis_order"] == "x, y, z"
    assert info["shape"] == [18, 16, 5] and info["frames"] == 4  # issue 18.13: shape in the order of spacing
    np.testing.assert_allclose(info["spacing_mm"], oblique_cine.spacing)
    np.testing.assert_allclose(info["origin_lps_mm"], oblique_cine.origin)
    np.testing.assert_allclose(info["direction_lps"], oblique_cine.direction)
    assert info["frame_times_ms"] == [0.0, 120.0]
    assert info["synthesized_slices"] == [1, 3] and info["synthesized_from"] == "file metadata"


def test_info_text_describes_a_stack(tmp_path, oblique_stack):
    path = write(oblique_stack, tmp_path / "stack.nii.gz")
    out = subprocess.run([sys.executable, "-m", "calid", "info", str(path)], capture_output=True, text=True, check=True)
    lines = dict(line.split(None, 1) for line in out.stdout.splitlines())
    assert lines["kind"] == "3D"
    assert lines["axis_order"] == "x, y, z"
    assert lines["shape"] == "(24, 20, 6)"  # the same order as spacing_mm
    assert lines["dtype"] == "int16"
    assert lines["spacing_mm"] == "(1.37, 1.52, 10)"
    assert lines["frame_times_ms"] == "none"
    assert lines["synthesized_slices"] == "unknown (no report found)"  # NIfTI holds no calid metadata


@pytest.mark.parametrize("content", [None, b"\x00garbage" * 40])
def test_info_on_a_bad_file_exits_2_with_a_message(tmp_path, content):
    path = tmp_path / "scan.nii.gz"
    if content is not None:
        path.write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "calid", "info", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "calid info: error:" in out.stderr and "scan.nii.gz" in out.stderr
    assert "Traceback" not in out.stderr


def test_info_says_when_the_time_unit_is_unknown(tmp_path, oblique_cine, capsys):
    """Issue 18.3: frame times of a NIfTI with no time unit are the file's numbers, not ms."""
    path = write(oblique_cine.replace(frame_times=(0.0, 1.0, 2.0, 3.0), time_unit="unknown"), tmp_path / "c.nii.gz")
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frame_times_ms"] is None and info["frame_times_unit_unknown"] == [0.0, 3.0]


def _info_lines(path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "calid", "info", str(path)], capture_output=True, text=True, check=True)
    return dict(line.split(None, 1) for line in out.stdout.splitlines())


def test_info_reads_the_synthesised_slices_from_the_report_beside_a_nifti(tmp_path, oblique_stack):
    """Issue 18.4: NIfTI holds no calid metadata; the .calid.json beside it does."""
    source = write(oblique_stack, tmp_path / "sparse.nii.gz")
    assert main(["reconstruct", str(source), "-o", str(tmp_path / "dense.nii.gz"), "--factor", "2",
                 "--method", "linear", "--progress", "none"]) == 0
    line = _info_lines(tmp_path / "dense.nii.gz")["synthesized_slices"]
    assert line.startswith("1, 3, 5, 7, 9") and "dense.calid.json" in line


def test_info_json_gives_the_report_and_the_slices(tmp_path, oblique_stack, capsys):
    source = write(oblique_stack, tmp_path / "sparse.nii.gz")
    assert main(["reconstruct", str(source), "-o", str(tmp_path / "dense.nii.gz"), "--factor", "3",
                 "--method", "linear", "--progress", "none"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "dense.nii.gz"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["synthesized_slices"] == [i for i in range(16) if i % 3]
    assert info["synthesized_from"] == str(tmp_path / "dense.calid.json")


def test_info_without_a_report_says_unknown_never_none(tmp_path, oblique_stack, capsys):
    path = write(oblique_stack, tmp_path / "dense.nii.gz")
    assert _info_lines(path)["synthesized_slices"] == "unknown (no report found)"
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["synthesized_slices"] is None and info["synthesized_from"] == "unknown (no report found)"


def test_info_refuses_a_report_that_describes_another_file(tmp_path, oblique_stack):
    source = write(oblique_stack, tmp_path / "sparse.nii.gz")
    assert main(["reconstruct", str(source), "-o", str(tmp_path / "dense.nii.gz"), "--factor", "2",
                 "--method", "linear", "--progress", "none"]) == 0
    write(oblique_stack, tmp_path / "dense.nii.gz")  # replaced by a file of another shape
    assert _info_lines(tmp_path / "dense.nii.gz")["synthesized_slices"].startswith("unknown (")
