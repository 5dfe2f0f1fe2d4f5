"""Image and segmentation metrics for the held-out-slice evaluation (pure functions).

Conventions, stated once because every reported number depends on them:

- ``psnr`` is ``10 log10(data_range^2 / MSE)``; identical images give ``inf``.
- ``ssim`` is Wang et al. (2004) on a 2D slice: gaussian window 11, sigma 1.5,
  K1 0.01, K2 0.03, averaged over the window positions that fit inside the slice
  (MONAI's :func:`~monai.metrics.regression.compute_ssim_and_cs`; equal to
  scikit-image's ``structural_similarity(gaussian_weights=True)``).
- ``contrast_ratio`` is the standard deviation of each predicted slice over that of its
  true slice, averaged over slices: 1 is the truth's contrast, below 1 a smoother image
  (a conditional-mean estimate sits below 1 by design; it shows how much texture and
  noise a method leaves out, which PSNR rewards and a reader notices).
- ``dice`` of a structure absent from both masks is ``nan`` (nothing to score, left
  out of means by ``nanmean``); absent from exactly one of them it is ``0``.
- ``hd95`` is ``nan`` unless the structure is present in both masks: a distance to
  nothing is undefined, and an arbitrary large number would swamp every mean.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from calid.errors import InputError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def _same_shape(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(f"prediction and truth must have the same shape, not {pred.shape} and {truth.shape}")
    return pred, truth


def _as_batch(array: np.ndarray):
    """A (1, 1, ...) float64 tensor, the batch-and-channel layout MONAI metrics take."""
    import torch

    return torch.as_tensor(np.asarray(array, dtype=np.float64))[None, None]


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements."""
    pred, truth = _same_shape(pred, truth)
    mse = float(np.mean((pred.astype(np.float64) - truth.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity of two 2D slices (gaussian window 11, sigma 1.5)."""
    from monai.metrics.regression import compute_ssim_and_cs

    pred, truth = _same_shape(pred, truth)
    if pred.ndim != 2:
        raise InputError(f"ssim takes 2D slices (Y, X), not {pred.ndim}D arrays of shape {pred.shape}")
    if min(pred.shape) < SSIM_WINDOW:
        raise InputError(f"ssim needs slices of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, not {pred.shape}")
    value, _ = compute_ssim_and_cs(
        _as_batch(pred),
        _as_batch(truth),
        spatial_dims=2,
        kernel_size=(SSIM_WINDOW, SSIM_WINDOW),
        kernel_sigma=(SSIM_SIGMA, SSIM_SIGMA),
        data_range=data_range,
    )
    return float(value.mean())


def contrast_ratio(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over slices (Z', Y, X) of std(pred slice) / std(true slice); flat true slices are left out."""
    pred, truth = _same_shape(pred, truth)
    if pred.ndim != 3:
        raise InputError(f"contrast_ratio takes a stack of slices (Z, Y, X), not shape {pred.shape}")
    true_std = truth.astype(np.float64).std(axis=(1, 2))
    pred_std = pred.astype(np.float64).std(axis=(1, 2))
    varied = true_std > 1e-9 * max(float(np.abs(truth).max()), 1e-30)  # flat up to rounding
    return float(np.mean(pred_std[varied] / true_std[varied])) if varied.any() else float("nan")


def gradient_ratio(pred: np.ndarray, truth: np.ndarray) -> float:
    """mean |grad pred| / mean |grad truth| over a stack of slices (Z', Y, X): 1 = as sharp as the real slices.

    In-plane gradient magnitude per pixel (central differences inside, one-sided at the
    edges: ``np.gradient``), pooled over all slices; a blurred prediction scores below 1,
    added noise above. NaN when the true slices are flat.
    """
    pred, truth = _same_shape(pred, truth)
    if pred.ndim != 3 or min(pred.shape[1:]) < 2:
        raise InputError(f"gradient_ratio takes a stack of slices (Z, Y, X) of at least 2 x 2, not shape {pred.shape}")

    def mean_gradient(stack: np.ndarray) -> float:
        dy, dx = np.gradient(stack.astype(np.float64), axis=(1, 2))
        return float(np.hypot(dy, dx).mean())

    true_mean = mean_gradient(truth)
    if true_mean <= 1e-12 * max(float(np.abs(truth).max()), 1e-30):
        return float("nan")
    return mean_gradient(pred) / true_mean


def dice(pred_labels: np.ndarray, true_labels: np.ndarray, label: int) -> float:
    """Dice overlap of one label value (see the module docstring for empty masks)."""
    pred_labels, true_labels = _same_shape(pred_labels, true_labels)
    pred_mask, true_mask = pred_labels == label, true_labels == label
    total = int(pred_mask.sum()) + int(true_mask.sum())
    if total == 0:
        return float("nan")
    return float(2.0 * np.logical_and(pred_mask, true_mask).sum() / total)


def hd95(pred_labels: np.ndarray, true_labels: np.ndarray, label: int, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance (mm) between the surfaces of one label.

    ``spacing`` gives the pixel size per array axis, in the array's axis order
    (e.g. ``(dy, dx)`` for a 2D slice).
    """
    from monai.metrics import compute_hausdorff_distance

    pred_labels, true_labels = _same_shape(pred_labels, true_labels)
    spacing = [float(s) for s in spacing]
    if len(spacing) != pred_labels.ndim:
        raise InputError(f"spacing must have one value per axis ({pred_labels.ndim}), not {len(spacing)}")
    pred_mask, true_mask = pred_labels == label, true_labels == label
    if not pred_mask.any() or not true_mask.any():
        return float("nan")
    with warnings.catch_warnings():  # MONAI warns about its own deprecated internal argument
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(
            _as_batch(pred_mask), _as_batch(true_mask), include_background=True, percentile=95, spacing=spacing
        )
    return float(distance.reshape(-1)[0])


def temporal_consistency_error(pred: np.ndarray, truth: np.ndarray, wrap: bool = True) -> float:
    """Mean |(pred[t+1] - pred[t]) - (truth[t+1] - truth[t])| over frames and pixels.

    It asks whether the reconstruction moves like the real heart from one frame to
    the next, independently of a constant per-frame error. A cine covers one
    periodic heartbeat, so by default the pair (last frame, first frame) counts too.
    """
    pred, truth = _same_shape(pred, truth)
    if pred.ndim < 2 or pred.shape[0] < 2:
        raise InputError(f"temporal consistency needs at least 2 frames along axis 0, not shape {pred.shape}")
    pred, truth = pred.astype(np.float64), truth.astype(np.float64)
    if wrap:
        step_pred, step_truth = np.roll(pred, -1, axis=0) - pred, np.roll(truth, -1, axis=0) - truth
    else:
        step_pred, step_truth = np.diff(pred, axis=0), np.diff(truth, axis=0)
    return float(np.mean(np.abs(step_pred - step_truth)))


def heart_box(labels: np.ndarray, margin: int = 10) -> tuple[int, int, int, int] | None:
    """In-plane box ``(y0, y1, x0, x1)`` (half-open) around every label of every slice/frame.

    ``labels`` is ``(Z, Y, X)`` or ``(T, Z, Y, X)``; the box grows by ``margin`` pixels
    on each side, clipped to the image. ``None`` when there is no label at all:
    a box is never guessed.
    """
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise InputError(f"labels must have at least 2 axes (..., Y, X), not shape {labels.shape}")
    if margin < 0:
        raise InputError(f"margin must be >= 0 pixels, not {margin}")
    occupied = labels.reshape(-1, *labels.shape[-2:]).any(axis=0)
    if not occupied.any():
        return None
    rows, cols = np.flatnonzero(occupied.any(axis=1)), np.flatnonzero(occupied.any(axis=0))
    height, width = occupied.shape
    return (
        max(int(rows[0]) - margin, 0),
        min(int(rows[-1]) + 1 + margin, height),
        max(int(cols[0]) - margin, 0),
        min(int(cols[-1]) + 1 + margin, width),
    )
