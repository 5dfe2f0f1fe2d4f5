"""Metrics against tiny numpy references and stated conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from calid.evaluation import metrics
from calid.errors import InputError


def reference_ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Wang et al. 2004 with an 11x11 gaussian (sigma 1.5), mean over the valid region."""
    radius = 5
    g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / 1.5) ** 2)
    window = np.outer(g, g) / np.outer(g, g).sum()
    crop = (slice(radius, -radius), slice(radius, -radius))

    def blur(a):
        return ndimage.correlate(a, window, mode="constant")[crop]

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


@pytest.fixture
def slice_pair():
    rng = np.random.default_rng(3)
    truth = ndimage.gaussian_filter(rng.random((32, 28)), 2.0)
    return truth, truth + rng.normal(0, 0.05, truth.shape)


def test_psnr_matches_formula(slice_pair):
    truth, pred = slice_pair
    expected = 10 * np.log10(2.0**2 / np.mean((pred - truth) ** 2))
    assert metrics.psnr(pred, truth, data_range=2.0) == pytest.approx(expected, rel=1e-12)


def test_psnr_of_identical_images_is_infinite(slice_pair):
    assert metrics.psnr(slice_pair[0], slice_pair[0]) == math.inf


def test_ssim_matches_numpy_reference(slice_pair):
    truth, pred = slice_pair
    # MONAI computes in float32
    assert metrics.ssim(pred, truth) == pytest.approx(reference_ssim(pred, truth), abs=2e-5)
    assert metrics.ssim(pred, truth, data_range=4.0) == pytest.approx(reference_ssim(pred, truth, 4.0), abs=2e-5)


def test_ssim_is_one_for_identical_and_falls_with_noise(slice_pair):
    truth, _ = slice_pair
    rng = np.random.default_rng(0)
    scores = [metrics.ssim(truth + rng.normal(0, s, truth.shape), truth) for s in (0.01, 0.05, 0.2)]
    assert metrics.ssim(truth, truth) == pytest.approx(1.0, abs=1e-9)
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_ssim_rejects_3d_and_too_small_slices():
    with pytest.raises(InputError, match="2D"):
        metrics.ssim(np.zeros((2, 16, 16)), np.zeros((2, 16, 16)))
    with pytest.raises(InputError, match="at least 11"):
        metrics.ssim(np.zeros((10, 16)), np.zeros((10, 16)))


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="same shape"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_contrast_ratio_is_the_mean_ratio_of_slice_deviations():
    rng = np.random.default_rng(3)
    truth = rng.normal(0.5, 0.2, size=(3, 16, 16))
    assert metrics.contrast_ratio(truth, truth) == pytest.approx(1.0)
    smoother = truth.mean() + 0.5 * (truth - truth.mean())
    assert metrics.contrast_ratio(smoother, truth) == pytest.approx(0.5)
    brighter = truth + 0.3  # a shift changes no contrast
    assert metrics.contrast_ratio(brighter, truth) == pytest.approx(1.0)
    flat = truth.copy()
    flat[1] = 0.4  # a flat true slice has no contrast to compare with: left out
    doubled = flat.copy()
    doubled[0] = 2 * flat[0]
    assert metrics.contrast_ratio(doubled, flat) == pytest.approx((2 + 1) / 2)
    assert np.isnan(metrics.contrast_ratio(np.zeros((2, 4, 4)), np.ones((2, 4, 4))))
    with pytest.raises(InputError, match="stack of slices"):
        metrics.contrast_ratio(truth[0], truth[0])


def reference_mean_gradient(stack: np.ndarray) -> float:
    """Mean in-plane gradient magnitude written out pixel by pixel (central inside, one-sided at edges)."""
    total, count = 0.0, 0
    z_count, rows, cols = stack.shape
    for z in range(z_count):
        for y in range(rows):
            for x in range(cols):
                if 0 < y < rows - 1:
                    dy = (stack[z, y + 1, x] - stack[z, y - 1, x]) / 2
                else:
                    dy = stack[z, 1, x] - stack[z, 0, x] if y == 0 else stack[z, y, x] - stack[z, y - 1, x]
                if 0 < x < cols - 1:
                    dx = (stack[z, y, x + 1] - stack[z, y, x - 1]) / 2
                else:
                    dx = stack[z, y, 1] - stack[z, y, 0] if x == 0 else stack[z, y, x] - stack[z, y, x - 1]
                total += (dy * dy + dx * dx) ** 0.5
                count += 1
    return total / count


def test_gradient_ratio_matches_a_pixel_by_pixel_reference():
    rng = np.random.default_rng(4)
    truth = rng.normal(0.5, 0.2, size=(2, 7, 9))
    pred = rng.normal(0.5, 0.1, size=(2, 7, 9))
    expected = reference_mean_gradient(pred) / reference_mean_gradient(truth)
    assert metrics.gradient_ratio(pred, truth) == pytest.approx(expected, rel=1e-12)
    assert metrics.gradient_ratio(truth, truth) == pytest.approx(1.0)
    assert metrics.gradient_ratio(2 * truth + 0.3, truth) == pytest.approx(2.0)  # twice as steep; a shift is no edge
    blurred = (truth + np.roll(truth, 1, axis=2) + np.roll(truth, 1, axis=1)) / 3
    assert metrics.gradient_ratio(blurred, truth) < 0.9
    assert np.isnan(metrics.gradient_ratio(truth, np.full_like(truth, 0.4)))
    with pytest.raises(InputError, match="stack of slices"):
        metrics.gradient_ratio(truth[0], truth[0])


def test_dice_counts_overlap_of_one_label():
    truth = np.zeros((6, 6), int)
    pred = np.zeros((6, 6), int)
    truth[1:3, 1:4] = 2  # 6 pixels
    pred[1:3, 2:5] = 2  # 6 pixels, 4 shared
    pred[5, 5] = 3
    assert metrics.dice(pred, truth, 2) == pytest.approx(2 * 4 / 12)
    assert metrics.dice(pred, truth, 3) == 0.0  # only in the prediction
    assert math.isnan(metrics.dice(pred, truth, 1))  # in neither


def test_hd95_matches_brute_force_surface_distances():
    truth = np.zeros((20, 20), int)
    pred = np.zeros((20, 20), int)
    truth[5:12, 4:10] = 1
    pred[7:15, 6:13] = 1
    spacing = (2.0, 0.5)

    def surface(mask):
        return np.argwhere(mask & ~ndimage.binary_erosion(mask)) * np.asarray(spacing)

    a, b = surface(pred == 1), surface(truth == 1)
    distances = np.linalg.norm(a[:, None] - b[None], axis=-1)
    expected = max(np.percentile(distances.min(1), 95), np.percentile(distances.min(0), 95))
    assert metrics.hd95(pred, truth, 1, spacing) == pytest.approx(expected, rel=1e-5)


def test_hd95_is_nan_unless_the_label_is_in_both():
    truth = np.zeros((8, 8), int)
    truth[2:5, 2:5] = 1
    assert math.isnan(metrics.hd95(np.zeros_like(truth), truth, 1, (1.0, 1.0)))
    assert metrics.hd95(truth, truth, 1, (1.0, 1.0)) == 0.0
    with pytest.raises(InputError, match="one value per axis"):
        metrics.hd95(truth, truth, 1, (1.0, 1.0, 1.0))


def test_temporal_consistency_includes_wrap_around_pair():
    truth = np.zeros((3, 2, 2))
    pred = truth.copy()
    pred[1] += 1.0  # steps 0->1: +1, 1->2: -1, 2->0: 0
    assert metrics.temporal_consistency_error(pred, truth) == pytest.approx(2 / 3)
    assert metrics.temporal_consistency_error(pred, truth, wrap=False) == pytest.approx(1.0)
    assert metrics.temporal_consistency_error(pred + 5.0, truth + 1.0) == pytest.approx(2 / 3)  # offset-free
    with pytest.raises(InputError, match="2 frames"):
        metrics.temporal_consistency_error(pred[:1], truth[:1])


def test_heart_box_covers_all_slices_and_frames_with_clipped_margin():
    labels = np.zeros((2, 3, 40, 50), np.uint8)
    labels[0, 1, 12:15, 20:22] = 1
    labels[1, 2, 30, 45] = 3
    assert metrics.heart_box(labels, margin=10) == (2, 40, 10, 50)
    assert metrics.heart_box(labels[0], margin=0) == (12, 15, 20, 22)


def test_heart_box_is_none_without_labels():
    assert metrics.heart_box(np.zeros((3, 8, 8))) is None
