"""QC figures: beside every reconstruction and in the cohort index (evaluate's plots: evaluation/test_evaluate_plots.py)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from calid.cli import main
from calid.io.qc_figure import ACQUIRED_COLOUR, SYNTHESISED_COLOUR, figure_title, qc_path, render_qc_figure
from calid.io.read_write import write
from calid.io.volume import Volume
from calid.methods.reconstruction import reconstruct
from calid.phantom.generator import make_phantom


@pytest.fixture(scope="module")
def phantom_stack() -> Volume:
    """A small 3D phantom (6 slices, 10 mm apart, 64 x 64 pixels of 1.5 mm)."""
    return make_phantom(n_slices=6, n_frames=1, as_3d=True, size=(64, 64), pixel_spacing=1.5, slice_spacing=10.0).image


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


def _reconstruct(source, output, *extra) -> int:
    return main(["reconstruct", str(source), "-o", str(output), "--factor", "2", "--method", "linear",
                 "--progress", "none", *extra])


def test_reconstruct_writes_a_readable_figure_beside_the_output(tmp_path, phantom_stack, capsys):
    source = write(phantom_stack, tmp_path / "sparse.nii.gz")
    assert _reconstruct(source, tmp_path / "dense.nii.gz") == 0
    figure = tmp_path / "dense.qc.png"
    assert qc_path(tmp_path / "dense.nii.gz") == figure
    assert f"QC figure: {figure}" in capsys.readouterr().out
    with Image.open(figure) as image:
        assert image.width >= 1200 and image.height >= 400


def test_no_qc_writes_no_figure(tmp_path, phantom_stack):
    source = write(phantom_stack, tmp_path / "sparse.nii.gz")
    assert _reconstruct(source, tmp_path / "dense.nii.gz", "--no-qc") == 0
    assert (tmp_path / "dense.nii.gz").exists()
    assert not list(tmp_path.glob("*.png"))


def test_a_failed_run_leaves_no_figure(tmp_path, phantom_stack, capsys):
    source = write(phantom_stack, tmp_path / "sparse.nii.gz")
    # A linear reconstruction has no uncertainty: refused after the work, before anything is written.
    assert _reconstruct(source, tmp_path / "dense.nii.gz", "--uncertainty", str(tmp_path / "sd.nii.gz")) == 2
    assert "--uncertainty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sparse.nii.gz"]


def test_synthesised_slices_are_framed_in_their_colour(phantom_stack):
    dense = reconstruct(phantom_stack, factor=2, method="linear", progress="none").volume
    figure = render_qc_figure(dense, title="test")
    shown = [p for p in figure.panels if p.kind in ("acquired", "synthesised")]
    assert len(shown) == 8
    assert figure.synthesised_slices == tuple(p.slice_index for p in shown if p.slice_index in dense.synthesized)
    assert set(figure.synthesised_slices) and set(figure.synthesised_slices) <= set(dense.synthesized)
    with Image.open(io.BytesIO(figure.png)) as image:
        assert image.size == figure.size
        pixels = np.asarray(image.convert("RGB")).astype(int)
    for panel in shown:
        left, top, right, bottom = panel.box
        edge = pixels[(top + bottom) // 2, left - 1 : left + 2]  # the frame straddles the panel's left edge
        expected = _rgb(SYNTHESISED_COLOUR if panel.kind == "synthesised" else ACQUIRED_COLOUR)
        assert np.abs(edge - expected).sum(axis=1).min() < 30, (panel, edge)
        assert ("synthesised" in panel.title) == (panel.slice_index in dense.synthesized)


def test_long_axis_cuts_keep_true_proportions(phantom_stack):
    dense = reconstruct(phantom_stack, factor=2, method="linear", progress="none").volume
    figure = render_qc_figure(dense, title="test")
    cuts = [p for p in figure.panels if p.kind == "long-axis"]
    assert len(cuts) == 2
    height_mm = dense.n_slices * dense.slice_spacing  # 11 slices of 5 mm
    width_mm = 64 * 1.5  # the whole 96 mm field (smaller than the crop)
    for panel in cuts:
        left, top, right, bottom = panel.box
        assert (bottom - top) / (right - left) == pytest.approx(height_mm / width_mm, rel=0.03)


def test_cine_figure_names_its_frame_and_shows_uncertainty(phantom_stack):
    cine = Volume(np.stack([phantom_stack.array] * 3), spacing=phantom_stack.spacing)
    dense = reconstruct(cine, factor=2, method="linear", progress="none").volume
    spread = dense.replace(array=np.abs(np.random.default_rng(0).normal(size=dense.array.shape)).astype(np.float32))
    title = figure_title("linear", 2, dense, 0, "cine.nii.gz")
    assert "cine frame 1 of 3 (first frame)" in title
    figure = render_qc_figure(dense, title=title, uncertainty=spread, truth=dense)
    kinds = [p.kind for p in figure.panels]
    assert kinds.count("uncertainty") == 3 and kinds.count("truth") == 8 + 1


def test_cohort_index_links_every_case_to_its_figure(tmp_path, phantom_stack):
    folder = tmp_path / "studies"
    folder.mkdir()
    for name in ("a", "b"):
        write(phantom_stack, folder / f"{name}.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"not a nifti file")
    out = tmp_path / "dense"
    assert main(["reconstruct", str(folder), "-o", str(out), "--cohort", "--factor", "2", "--method", "linear",
                 "--progress", "none"]) == 1
    page = (out / "index.html").read_text()
    for name in ("a", "b", "broken"):
        assert f"{name}.nii.gz" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(images) == ["a_dense.qc.png", "b_dense.qc.png"]
    assert all((out / image).is_file() for image in images)
    assert page.count("failed") >= 1 and "not a nifti" not in page  # the reader's error, not the raw bytes
