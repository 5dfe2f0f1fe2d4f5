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
    assert info["kind"] == "cine" and info["axes"] == "TZYX"
    assert info["shape"] == [4, 5, 16, 18]
    np.testing.assert_allclose(info["spacing_mm"], oblique_cine.spacing)
    np.testing.assert_allclose(info["origin_lps_mm"], oblique_cine.origin)
    np.testing.assert_allclose(info["direction_lps"], oblique_cine.direction)
    assert info["frame_times_ms"] == [0.0, 120.0]
    assert info["synthesized_slices"] == [1, 3]


def test_info_text_describes_a_stack(tmp_path, oblique_stack):
    path = write(oblique_stack, tmp_path / "stack.nii.gz")
    out = subprocess.run([sys.executable, "-m", "calid", "info", str(path)], capture_output=True, text=True, check=True)
    lines = dict(line.split(None, 1) for line in out.stdout.splitlines())
    assert lines["kind"] == "3D"
    assert lines["shape"] == "[6, 20, 24]"
    assert lines["dtype"] == "int16"
    assert lines["spacing_mm"] == "(1.37, 1.52, 10)"
    assert lines["frame_times_ms"] == "none"
    assert lines["synthesized_slices"] == "none"


@pytest.mark.parametrize("content", [None, b"\x00garbage" * 40])
def test_info_on_a_bad_file_exits_2_with_a_message(tmp_path, content):
    path = tmp_path / "scan.nii.gz"
    if content is not None:
        path.write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "calid", "info", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "calid info: error:" in out.stderr and "scan.nii.gz" in out.stderr
    assert "Traceback" not in out.stderr
