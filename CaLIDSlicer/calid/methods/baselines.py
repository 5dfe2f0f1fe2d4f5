"""Classical slice interpolation: the baselines every CaLID result is compared with.

All methods fill the gaps of one 3D stack ``(Z, Y, X)`` along Z. Acquired slice ``i``
lands at output index ``i * factor`` unchanged, so the only thing a method decides is
the ``factor - 1`` slices between two acquired ones, at fractions ``a = k / factor``.
"""

from __future__ import annotations

import numpy as np

from calid.errors import InputError

#: Method names accepted by :func:`interpolate`, fastest first.
METHODS = ("nearest", "linear", "cubic", "registration")
#: Methods that need a trained model (the learned motion guide, :mod:`calid.models.motion`).
LEARNED_METHODS = ("motion",)


def interpolate(
    stack: np.ndarray,
    factor: int,
    method: str = "linear",
    spacing=(1.0, 1.0, 1.0),
) -> np.ndarray:
    """Dense float32 stack of ``(Z - 1) * factor + 1`` slices; input slice i at i * factor.

    ``spacing`` is (x, y, z) in mm like :class:`calid.io.volume.Volume`; only the in-plane
    part matters (registration measures its smoothing and displacements in mm).
    """
    stack = _checked_stack(stack)
    factor = _checked_factor(factor)
    if method not in METHODS + LEARNED_METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS + LEARNED_METHODS)}, not {method!r}")
    spacing_xy = _checked_spacing(spacing)
    if factor == 1:
        return stack.copy()
    if method == "nearest":
        dense = _nearest(stack, factor)
    elif method == "linear":
        dense = _linear(stack, factor)
    elif method == "cubic":
        dense = _cubic(stack, factor)
    elif method == "motion":
        from calid.models.motion import default_model, motion_interpolate

        dense = motion_interpolate(stack, factor, default_model())
    else:
        from calid.methods.registration import registration_interpolate

        dense = registration_interpolate(stack, factor, spacing_xy)
    dense = dense.astype(np.float32, copy=False)
    dense[::factor] = stack  # acquired slices bit-exact, whatever rounding the method did
    return dense


def _checked_stack(stack: np.ndarray) -> np.ndarray:
    array = np.asarray(stack)
    if array.ndim != 3:
        raise InputError(
            f"stack must be 3D (Z, Y, X), not {array.ndim}D with shape {array.shape}; "
            "pass one frame of a cine at a time"
        )
    if array.shape[0] < 2:
        raise InputError(f"stack must have at least 2 slices to interpolate between, not {array.shape[0]}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"stack must hold real numbers, not {array.dtype}")
    return array.astype(np.float32, copy=False)


def _checked_factor(factor) -> int:
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InputError(f"factor must be an integer >= 1, not {factor!r}")
    return int(factor)


def _checked_spacing(spacing) -> tuple[float, float]:
    values = np.asarray(spacing, dtype=float).reshape(-1)
    if values.size not in (2, 3) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"spacing must be 2 or 3 positive numbers (x, y[, z]) in mm, not {spacing!r}")
    return float(values[0]), float(values[1])


def _dense_positions(n_slices: int, factor: int) -> np.ndarray:
    """Output slice positions in units of the acquired slice spacing."""
    return np.arange((n_slices - 1) * factor + 1) / factor


def _nearest(stack: np.ndarray, factor: int) -> np.ndarray:
    """Copy the nearest acquired slice; half-way ties go to the lower one."""
    positions = _dense_positions(stack.shape[0], factor)
    index = np.ceil(positions - 0.5).astype(int)  # 0.5 -> 0, 0.51 -> 1
    return stack[index]


def _linear(stack: np.ndarray, factor: int) -> np.ndarray:
    """(1 - a) * prev + a * next between each pair of acquired slices."""
    positions = _dense_positions(stack.shape[0], factor)
    lower = np.minimum(np.floor(positions).astype(int), stack.shape[0] - 2)
    a = (positions - lower).astype(np.float32)[:, None, None]
    return (1 - a) * stack[lower] + a * stack[lower + 1]


def _cubic(stack: np.ndarray, factor: int) -> np.ndarray:
    """Interpolating cubic along z through the acquired slices: PCHIP.

    PCHIP (piecewise cubic Hermite, Fritsch-Carlson slopes) is exact for straight lines
    and bends with the data elsewhere, but it never overshoots: between two slices the
    value stays within their range. With 10-20 mm gaps, MR intensity along z jumps
    (blood pool ends, a wall appears); a global spline rings there. On the held-out-
    slice test (8 ACDC train patients, factor 2) PCHIP beat not-a-knot and natural
    splines and Akima/makima in PSNR and SSIM, yet still lost to linear: measured
    intensities along z are too rough at such gaps for any cubic to help.
    """
    from scipy.interpolate import PchipInterpolator

    z = np.arange(stack.shape[0], dtype=float)
    curve = PchipInterpolator(z, stack.astype(np.float64), axis=0)
    return curve(_dense_positions(stack.shape[0], factor)).astype(np.float32)
