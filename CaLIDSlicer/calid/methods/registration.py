"""Registration-based slice interpolation: morph one acquired slice into the next.

Linear interpolation cross-fades: a wall that moves 6 px between two slices shows up
twice at half intensity. Here every pair of neighbouring slices is registered in both
directions with SimpleITK's symmetric-forces demons (deformable, multi-resolution, on
intensity-normalised, lightly smoothed copies), and the slice at fraction ``a`` blends
the previous slice moved ``a`` of the way with the next one moved ``1 - a`` of the way
back, so the wall appears once, in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class DemonsSettings:
    """Registration parameters, tuned on 8 ACDC train patients (held-out-slice test).

    Slices 20 mm apart differ in anatomy, not only by motion, so a stiff field (9 mm
    Gaussian) and small steps win; the full-resolution level added nothing. Heart-box
    PSNR / SSIM went from 17.5 dB / 0.36 (linear) to 18.7 dB / 0.46. Lengths are in mm
    so that the same settings suit 0.7 mm and 1.9 mm pixels.
    """

    shrink_factors: tuple[int, ...] = (4, 2)
    iterations: tuple[int, ...] = (40, 10)
    field_sigma_mm: float = 9.0
    max_step_mm: float = 1.0
    image_sigma_mm: float = 1.5
    match_histograms: bool = True


DEFAULT_SETTINGS = DemonsSettings()


def registration_interpolate(
    stack: np.ndarray,
    factor: int,
    spacing_xy: tuple[float, float],
    settings: DemonsSettings = DEFAULT_SETTINGS,
) -> np.ndarray:
    """Dense float32 stack (``(Z - 1) * factor + 1`` slices) made by morphing neighbours."""
    fractions = np.arange(1, factor) / factor
    dense = np.empty(((stack.shape[0] - 1) * factor + 1, *stack.shape[1:]), dtype=np.float32)
    dense[::factor] = stack
    for z in range(stack.shape[0] - 1):
        between = morph_between(stack[z], stack[z + 1], fractions, spacing_xy, settings)
        dense[z * factor + 1 : (z + 1) * factor] = between
    return dense


def morph_between(
    prev: np.ndarray,
    next_: np.ndarray,
    fractions: np.ndarray,
    spacing_xy: tuple[float, float],
    settings: DemonsSettings = DEFAULT_SETTINGS,
) -> np.ndarray:
    """Slices at each fraction a in (0, 1) from ``prev`` (a = 0) to ``next_`` (a = 1)."""
    return warp_between(prev, next_, symmetric_motion(prev, next_, spacing_xy, settings), fractions, spacing_xy)


def warp_between(
    prev: np.ndarray,
    next_: np.ndarray,
    motion: np.ndarray,
    fractions: np.ndarray,
    spacing_xy: tuple[float, float],
) -> np.ndarray:
    """:func:`morph_between` with the motion (:func:`symmetric_motion`) already known."""
    prev_image = _as_image(prev, spacing_xy)
    next_image = _as_image(next_, spacing_xy)
    slices = []
    for a in fractions:
        warped_prev = _warp(prev_image, motion, -a)
        warped_next = _warp(next_image, motion, 1.0 - a)
        slices.append((1.0 - a) * warped_prev + a * warped_next)
    return np.stack(slices).astype(np.float32)


def symmetric_motion(
    prev: np.ndarray,
    next_: np.ndarray,
    spacing_xy: tuple[float, float],
    settings: DemonsSettings = DEFAULT_SETTINGS,
) -> np.ndarray:
    """Displacement (Y, X, 2) in mm, x then y, that carries ``prev`` onto ``next_``.

    Registered both ways and averaged (forward minus backward, halved), so swapping
    the two slices gives the same motion reversed instead of a different answer.
    """
    prev_features, next_features = _registration_inputs(prev, next_, spacing_xy, settings)
    forward = _demons(prev_features, next_features, settings)  # prev(x) ~ next(x + forward(x))
    backward = _demons(next_features, prev_features, settings)  # next(x) ~ prev(x + backward(x))
    return 0.5 * (sitk.GetArrayViewFromImage(forward) - sitk.GetArrayViewFromImage(backward))


def _as_image(array: np.ndarray, spacing_xy: tuple[float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetSpacing(spacing_xy)
    return image


def _registration_inputs(prev, next_, spacing_xy, settings: DemonsSettings) -> tuple[sitk.Image, sitk.Image]:
    """Both slices on one intensity scale and lightly smoothed, as demons assumes."""
    scale = float(np.percentile(np.concatenate([prev.ravel(), next_.ravel()]), 99.5)) or 1.0
    images = []
    for array in (prev, next_):
        image = _as_image(np.clip(array / scale, 0.0, 1.5), spacing_xy)
        if settings.image_sigma_mm > 0:
            image = sitk.SmoothingRecursiveGaussian(image, settings.image_sigma_mm)
        images.append(image)
    return images[0], images[1]


def _demons(fixed: sitk.Image, moving: sitk.Image, settings: DemonsSettings) -> sitk.Image:
    """Displacement field (mm) on the fixed grid: fixed(x) ~ moving(x + field(x))."""
    if settings.match_histograms:  # slices a gap apart differ in contrast, not only in shape
        moving = sitk.HistogramMatching(moving, fixed, 128, 7, True)
    field = None
    for shrink, iterations in zip(settings.shrink_factors, settings.iterations):
        fixed_level, moving_level = _shrunk(fixed, shrink), _shrunk(moving, shrink)
        field = _field_on(field, fixed_level)
        demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
        demons.SetNumberOfIterations(iterations)
        demons.SetUseImageSpacing(True)
        demons.SetMaximumUpdateStepLength(settings.max_step_mm)
        level_spacing = fixed_level.GetSpacing()[0]
        demons.SetSmoothDisplacementField(settings.field_sigma_mm > 0)
        demons.SetStandardDeviations(max(settings.field_sigma_mm / level_spacing, 0.5))
        field = demons.Execute(fixed_level, moving_level, field)
    return _field_on(field, fixed)


def _shrunk(image: sitk.Image, shrink: int) -> sitk.Image:
    if shrink == 1:
        return image
    return sitk.BinShrink(image, [shrink, shrink])


def _field_on(field: sitk.Image | None, reference: sitk.Image) -> sitk.Image:
    """``field`` resampled onto ``reference``'s grid; a zero field when there is none yet."""
    if field is None:
        zero = sitk.Image(reference.GetSize(), sitk.sitkVectorFloat64, 2)
        zero.CopyInformation(reference)
        return zero
    if field.GetSize() == reference.GetSize():
        return field
    return sitk.Resample(field, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)


def _warp(image: sitk.Image, motion: np.ndarray, scale: float) -> np.ndarray:
    """``image`` sampled at x + scale * motion(x); border values continue outwards."""
    field = sitk.GetImageFromArray(scale * motion, isVector=True)
    field.CopyInformation(image)
    transform = sitk.DisplacementFieldTransform(field)
    warped = sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32, True)
    return sitk.GetArrayViewFromImage(warped).astype(np.float32)
