"""``calid demo`` end to end on a small phantom."""

from __future__ import annotations

import json

from PIL import Image

from calid.cli import main
from calid.io.read_write import read


def test_demo_writes_dense_volume_report_and_preview(tmp_path, capsys):
    code = main(["demo", "-o", str(tmp_path), "--slices", "4", "--frames", "2", "--factor", "2",
                 "--method", "linear", "--progress", "none"])
    assert code == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and str(tmp_path / "preview.png") in out
    dense = read(tmp_path / "reconstruction.seq.nrrd")
    sparse = read(tmp_path / "phantom_sparse.nii.gz")
    assert dense.array.shape[:2] == (2, 7)
    assert (dense.array[:, ::2] == sparse.array).all()
    report = json.loads((tmp_path / "reconstruction.calid.json").read_text())
    assert report["synthesized_slices"] == [1, 3, 5]
    with Image.open(tmp_path / "preview.png") as image:
        assert image.width > 3 * image.height / 2  # three panels side by side
    assert not list(tmp_path.glob(".*part*"))  # no temporary leftovers


def test_demo_refuses_factor_one(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--factor", "1"]) == 2
    assert "--factor must be 2 or more" in capsys.readouterr().err
