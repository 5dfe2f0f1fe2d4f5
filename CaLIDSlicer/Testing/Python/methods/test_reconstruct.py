"""The public reconstruct API: geometry, measured data untouched, synthesis recorded, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from calid.errors import InputError
from calid.methods.precision import resolve_precision
from calid.methods.reconstruction import reconstruct, resolve_factor


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_dense_stack_lies_exactly_over_the_input(oblique_stack, factor):
    result = reconstruct(oblique_stack, factor=factor, method="linear")
    dense = result.volume
    assert dense.n_slices == (oblique_stack.n_slices - 1) * factor + 1
    assert np.allclose(dense.direction, oblique_stack.direction)
    assert np.allclose(dense.origin, oblique_stack.origin)
    assert dense.spacing[:2] == oblique_stack.spacing[:2]
    assert dense.slice_spacing == pytest.approx(oblique_stack.slice_spacing / factor)
    # acquired slice i and dense slice i*factor sit at the same physical place
    assert np.allclose(dense.slice_positions()[::factor], oblique_stack.slice_positions(), atol=1e-9)


def test_acquired_slices_pass_through_bit_exact_and_synthesis_is_listed(oblique_stack):
    result = reconstruct(oblique_stack, factor=3, method="registration")
    dense = result.volume
    assert dense.array.dtype == oblique_stack.array.dtype
    np.testing.assert_array_equal(dense.array[::3], oblique_stack.array)
    assert dense.acquired == tuple(range(0, dense.n_slices, 3))
    assert set(dense.synthesized) == set(range(dense.n_slices)) - set(dense.acquired)


def test_cine_keeps_frames_and_frame_times(oblique_cine):
    result = reconstruct(oblique_cine, factor=2, method="linear")
    dense = result.volume
    assert dense.array.shape == (4, 9, 16, 18)
    assert dense.frame_times == oblique_cine.frame_times
    np.testing.assert_array_equal(dense.array[:, ::2], oblique_cine.array)
    # linear midpoint of float data is the mean of its neighbours, frame by frame
    np.testing.assert_allclose(dense.array[:, 1], (oblique_cine.array[:, 0] + oblique_cine.array[:, 1]) / 2, rtol=1e-5)


def test_integer_input_rounds_synthesised_values_into_range(oblique_stack):
    stack = oblique_stack.replace(array=np.stack([np.full((4, 4), 0), np.full((4, 4), 32767)]).astype(np.int16),
                                  spacing=(1.0, 1.0, 8.0))
    dense = reconstruct(stack, factor=2, method="linear").volume
    assert dense.array.dtype == np.int16
    assert dense.array[1, 0, 0] in (16383, 16384)


def test_spacing_chooses_the_factor(oblique_stack):
    assert resolve_factor(oblique_stack, spacing=2.5) == 4
    assert reconstruct(oblique_stack, spacing=5.0, method="nearest").factor == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"factor": 0}, "factor must be a positive integer"),
        ({"factor": 2.5}, "factor must be a positive integer"),
        ({"spacing": 3.0}, r"does not divide the slice spacing 10 mm.*5 mm"),
        ({"spacing": -1.0}, "spacing must be a positive number"),
        ({}, "exactly one of factor"),
        ({"factor": 2, "spacing": 5.0}, "exactly one of factor"),
        ({"factor": 2, "method": "magic"}, "method must be one of"),
        ({"factor": 2, "method": "linear", "samples": 4}, "apply to the calid method only"),
        ({"factor": 2, "method": "registration", "guide": "none"}, "guide apply to the calid method only"),
        ({"factor": 2, "method": "calid", "guide": "optical-flow"}, "guide must be one of registration, motion, none"),
        ({"factor": 2, "method": "calid", "guide_strength": 0.7}, "guide strength 0.7 with 2 steps"),
        ({"factor": 2, "method": "calid", "guide_strength": "half"}, "guide_strength must be a number"),
        ({"factor": 2, "method": "calid", "guide_blend": 1.0}, r"guide blend must be a number in \[0, 1\)"),
        ({"factor": 2, "method": "calid", "guide_blend": -0.1}, r"guide blend must be a number in \[0, 1\)"),
        ({"factor": 2, "method": "calid", "views": 3}, "views must be one of 1, 2, 4, 8"),
        ({"factor": 2, "method": "calid", "guide": "none", "guide_blend": 0.2}, "which guide 'none' does not make"),
        ({"factor": 2, "method": "cubic", "views": 1, "guide_blend": 0.0}, "guide_blend and views apply to the calid method only"),
        ({"factor": 2, "method": "calid", "temperature": -0.5}, r"temperature must be a number in \[0, 2\]"),
        ({"factor": 2, "method": "calid", "temperature": 3}, r"temperature must be a number in \[0, 2\]"),
        ({"factor": 2, "method": "calid", "temperature": True}, r"temperature must be a number"),
        ({"factor": 2, "method": "registration", "temperature": 1.0}, "temperature apply to the calid method only"),
        ({"factor": 2, "method": "calid", "decoding": "sharp"}, "decoding must be one of residual, direct, guide-residual"),
        ({"factor": 2, "method": "calid", "guide": "none", "decoding": "guide-residual"}, "which guide 'none' does not make"),
        ({"factor": 2, "method": "linear", "decoding": "direct"}, "decoding apply to the calid method only"),
        ({"factor": 2, "method": "linear", "mode": "sideways"}, "mode must be"),
        ({"factor": 2, "method": "linear", "mode": "2dt"}, "needs a cine"),
    ],
)
def test_bad_arguments_are_refused_with_a_way_out(oblique_stack, kwargs, message):
    with pytest.raises(InputError, match=message):
        reconstruct(oblique_stack, **kwargs)


def test_nan_input_is_refused_before_any_work(oblique_cine):
    array = oblique_cine.array.copy()
    array[1, 2, 3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        reconstruct(oblique_cine.replace(array=array), factor=2, method="linear")


def test_auto_without_a_model_says_which_baseline_it_used(oblique_stack, monkeypatch, tmp_path):
    import calid.methods.reconstruction as rec

    monkeypatch.setattr(rec, "calid_model_available", lambda model=None: False)
    result = reconstruct(oblique_stack, factor=2, method="auto")
    assert result.method == rec.BEST_BASELINE
    assert any("no trained CaLID model" in note for note in result.notes)


def test_input_too_large_for_memory_is_refused_with_the_amount(oblique_stack, monkeypatch):
    import calid.io.validate as validate

    monkeypatch.setattr(validate, "available_memory_bytes", lambda: 1024)
    with pytest.raises(InputError, match=r"needs ~.* GiB"):
        reconstruct(oblique_stack, factor=4, method="linear")


@pytest.mark.parametrize("order", ["parallel", "autoregressive"])
def test_bundled_calid_model_keeps_measured_slices_and_geometry(oblique_stack, order):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    result = reconstruct(oblique_stack, factor=2, method="calid", order=order, seed=3)
    dense = result.volume
    assert result.method == "calid"
    np.testing.assert_array_equal(dense.array[::2], oblique_stack.array)
    assert dense.synthesized == tuple(range(1, dense.n_slices, 2))
    assert np.allclose(dense.slice_positions()[::2], oblique_stack.slice_positions())
    assert set(result.stage_seconds) >= {"encode", "register", "sample", "decode"}
    assert result.sampler == {"steps": 2, "samples": 1, "model": None, "order": order, "mode": "3d",
                              "guide": "registration", "guide_strength": 0.5, "guide_blend": 0.2,
                              "guide_detail": rec.DEFAULT_GUIDE_DETAIL, "guide_detail_mm": rec.DEFAULT_GUIDE_DETAIL_MM, "views": 1,
                              "temperature": 0.0, "decoding": rec.DEFAULT_DECODING, "temporal_smoothing": 0.0,
                              "guide_latents": "encode", "sharpen": 0.0, "sharpen_mm": 4.0,
                              "precision": resolve_precision("auto", "cpu")}
    assert result.sampler["precision"] in ("float32", "bfloat16")  # the report says what "auto" became



def test_temperature_draws_texture_from_the_seed_and_leaves_acquired_slices_alone(oblique_stack):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    estimate = reconstruct(oblique_stack, factor=2, method="calid", seed=3)
    sample = reconstruct(oblique_stack, factor=2, method="calid", seed=3, temperature=1.0)
    other = reconstruct(oblique_stack, factor=2, method="calid", seed=4, temperature=1.0)
    assert sample.sampler["temperature"] == 1.0
    for result in (sample, other):
        np.testing.assert_array_equal(result.volume.array[::2], oblique_stack.array)
    # at 0 the seed does not matter (deterministic estimate); at 1 it does
    again = reconstruct(oblique_stack, factor=2, method="calid", seed=4)
    np.testing.assert_array_equal(estimate.volume.array, again.volume.array)
    assert not np.array_equal(sample.volume.array[1::2], other.volume.array[1::2])
    assert not np.array_equal(sample.volume.array[1::2], estimate.volume.array[1::2])
    # several samples default to true samples (their spread is the uncertainty)
    assert reconstruct(oblique_stack, factor=2, method="calid", samples=2).sampler["temperature"] == 1.0


def test_calid_without_guide_starts_from_noise_and_says_so(oblique_stack):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    guided = reconstruct(oblique_stack, factor=2, method="calid", seed=3)
    unguided = reconstruct(oblique_stack, factor=2, method="calid", seed=3, guide="none")
    assert unguided.sampler["guide"] == "none" and "register" not in unguided.stage_seconds
    np.testing.assert_array_equal(guided.volume.array[::2], unguided.volume.array[::2])
    assert np.abs(guided.volume.array[1::2].astype(float) - unguided.volume.array[1::2]).max() > 0


def test_calid_samples_give_an_uncertainty_map_that_is_zero_on_measured_slices(oblique_stack):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    result = reconstruct(oblique_stack, factor=2, method="calid", samples=3, seed=1)
    std = result.uncertainty.array
    assert std.shape == result.volume.array.shape
    assert np.all(std[::2] == 0) and std[1::2].max() > 0


def test_order_is_refused_for_baselines(oblique_stack):
    with pytest.raises(InputError, match="apply to the calid method only"):
        reconstruct(oblique_stack, factor=2, method="linear", order="autoregressive")


def _with_dark_corner(volume, rows: int = 6):
    """The volume with its top rows exactly zero on every slice but the last (outside a scanner's view)."""
    array = volume.array.copy()
    array[..., :-1, :rows, :] = 0
    return volume.replace(array=array)


def test_outside_view_mask_marks_only_pixels_zero_on_both_neighbours():
    from calid.methods.calid_codec import outside_view_mask

    source = np.ones((2, 3, 4, 4), np.int16)
    source[:, 0, 0] = 0  # row 0 dark on slice 0 only
    source[:, 1, :2] = 0  # rows 0-1 dark on slice 1
    source[1, 2, 0, 0] = 0
    first_gap, second_gap = outside_view_mask(source, 1, 2), outside_view_mask(source, 3, 2)
    assert first_gap[:, 0].all() and not first_gap[:, 1:].any()  # both of slices 0 and 1 dark: row 0 only
    assert second_gap[1, 0, 0] and second_gap.sum() == 1


@pytest.mark.parametrize("samples", [1, 2])
def test_calid_leaves_the_dark_outside_of_the_view_dark(oblique_stack, samples):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    stack = _with_dark_corner(oblique_stack)
    result = reconstruct(stack, factor=2, method="calid", samples=samples, seed=0)
    dense = result.volume.array
    np.testing.assert_array_equal(dense[::2], stack.array)
    made = dense[1:-2:2]  # gaps whose two neighbours both have the dark rows
    assert np.all(made[:, :6] == 0) and np.all(made[:, 7:] != 0)
    assert np.any(dense[-2, :6] != 0)  # the last gap has one lit neighbour: nothing is masked
    if samples > 1:
        assert np.all(result.uncertainty.array[1:-2:2, :6] == 0)
