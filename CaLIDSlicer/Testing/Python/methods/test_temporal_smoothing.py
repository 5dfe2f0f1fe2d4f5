"""Smoothing a cine's synthesised slices along time (``temporal_smoothing``): filter, defaults, refusals, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from calid.errors import InputError
from calid.methods.temporal_smoothing import smooth_in_time


def test_only_the_target_slices_are_smoothed_around_the_heartbeat():
    out = np.zeros((6, 3, 4, 4), np.float32)
    out[:, 0] = out[:, 2] = 7.0  # acquired
    out[0, 1] = 60.0  # a spike in the first frame of the synthesised slice
    smooth_in_time(out, [1], 1.0)
    assert (out[:, 0] == 7.0).all() and (out[:, 2] == 7.0).all()
    column = out[:, 1, 0, 0]
    assert column[1] == pytest.approx(column[5]) and column[1] > 0  # the last frame is the first one's neighbour
    assert column[0] < 60.0 and column.sum() == pytest.approx(60.0, rel=1e-5)  # spread out, nothing lost


def test_integer_output_stays_integer_and_one_frame_or_sigma_zero_change_nothing():
    out = np.arange(4 * 2 * 3 * 3, dtype=np.int16).reshape(4, 2, 3, 3) * 10
    before = out.copy()
    smooth_in_time(out, [1], 0.0)
    np.testing.assert_array_equal(out, before)
    single = before[:1].copy()
    smooth_in_time(single, [1], 1.5)
    np.testing.assert_array_equal(single, before[:1])
    smooth_in_time(out, [1], 1.5)
    assert out.dtype == np.int16
    expected = np.rint(gaussian_filter1d(before[:, 1].astype(np.float32), 1.5, axis=0, mode="wrap"))
    np.testing.assert_array_equal(out[:, 1], expected)
    np.testing.assert_array_equal(out[:, 0], before[:, 0])


def _bundled_2dt_cine():
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from calid.methods.reconstruction import calid_model_available
    from calid.phantom.generator import make_phantom

    if not calid_model_available("calid-denoiser-2dt-acdc"):
        pytest.skip("the bundled 2D+T model is not installed")
    return make_phantom(n_slices=3, n_frames=20, size=(32, 32), pixel_spacing=5.0, seed=5).image


def test_2dt_smooths_by_default_and_3d_does_not():
    from calid.methods.reconstruction import reconstruct

    cine = _bundled_2dt_cine()
    smoothed = reconstruct(cine, factor=2, mode="2dt", device="cpu")
    raw = reconstruct(cine, factor=2, mode="2dt", device="cpu", temporal_smoothing=0)
    assert smoothed.sampler["temporal_smoothing"] == 1.0 and raw.sampler["temporal_smoothing"] == 0.0  # 5 % of 20 frames
    np.testing.assert_array_equal(smoothed.volume.array[:, ::2], cine.array)  # measured data untouched
    synthesised = list(smoothed.volume.synthesized)
    expected = gaussian_filter1d(raw.volume.array[:, synthesised].astype(np.float32), 1.0, axis=0, mode="wrap")
    np.testing.assert_allclose(smoothed.volume.array[:, synthesised], expected, rtol=1e-4, atol=1e-2)
    flicker = [np.abs(np.diff(r.volume.array[:, synthesised].astype(np.float64), axis=0)).mean() for r in (raw, smoothed)]
    assert flicker[1] < flicker[0]
    frame_by_frame = reconstruct(cine, factor=2, mode="3d", device="cpu")
    assert frame_by_frame.sampler["temporal_smoothing"] == 0.0


def test_the_default_width_follows_the_frame_count_in_2dt_only():
    from calid.methods.calid_settings import check_temporal_smoothing

    assert check_temporal_smoothing(None, "2dt", 30) == 1.5
    assert check_temporal_smoothing(None, "2dt", 4) == 0.2  # a short cine is barely touched
    assert check_temporal_smoothing(None, "2dt", 1) == 0.0
    assert check_temporal_smoothing(None, "3d", 30) == 0.0
    assert check_temporal_smoothing(2, "3d", 30) == 2.0


@pytest.mark.parametrize("value, message", [(-1.0, "temporal smoothing must be"), (9.0, "temporal smoothing must be"),
                                            ("wide", "temporal smoothing must be")])
def test_unusable_widths_are_refused_before_any_work(value, message):
    from calid.methods.reconstruction import reconstruct
    from calid.phantom.generator import make_phantom

    cine = make_phantom(n_slices=3, n_frames=4, size=(32, 32), seed=1).image
    with pytest.raises(InputError, match=message):
        reconstruct(cine, factor=2, method="calid", mode="3d", temporal_smoothing=value)


def test_a_single_stack_or_another_method_refuses_it():
    from calid.methods.reconstruction import reconstruct
    from calid.phantom.generator import make_phantom

    stack = make_phantom(n_slices=3, n_frames=1, size=(32, 32), seed=1, as_3d=True).image
    cine = make_phantom(n_slices=3, n_frames=4, size=(32, 32), seed=1).image
    with pytest.raises(InputError, match="one frame"):
        reconstruct(stack, factor=2, method="calid", temporal_smoothing=1.0)
    with pytest.raises(InputError, match="calid method only"):
        reconstruct(cine, factor=2, method="registration", temporal_smoothing=1.0)


def test_the_cli_passes_it_and_the_report_records_it(tmp_path):
    from calid.cli import main
    from calid.io.read_write import read, write

    cine = _bundled_2dt_cine()
    source, target = tmp_path / "sparse.seq.nrrd", tmp_path / "dense.seq.nrrd"
    write(cine, source)
    assert main(["reconstruct", str(source), "-o", str(target), "--factor", "2", "--mode", "2dt",
                 "--temporal-smoothing", "0.75", "--device", "cpu", "--progress", "none", "--no-qc"]) == 0
    np.testing.assert_array_equal(read(target).array[:, ::2], cine.array)
    report = json.loads((tmp_path / "dense.calid.json").read_text())
    assert report["sampler"]["temporal_smoothing"] == 0.75
