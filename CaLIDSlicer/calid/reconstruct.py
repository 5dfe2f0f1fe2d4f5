"""Public API: make a sparse short-axis stack or cine dense along the slice axis.

``calid.reconstruct`` is what the CLI, the Slicer module and the tests all call.
It owns the parts every method shares: choosing the factor, geometry of the dense
grid, copying acquired slices back bit-exact, recording which slices were
synthesised, and mapping intensities back to the input's type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from calid.errors import InputError
from calid.progress import Progress, ProgressMode, as_progress
from calid.volume import Volume

#: Classical methods, fastest first.
BASELINES = ("nearest", "linear", "cubic", "registration")
#: What ``method="auto"`` falls back to when no trained CaLID model is installed
#: (the best baseline in the README's held-out-slice table).
BEST_BASELINE = "registration"

#: fill(array (T, Z, Y, X) float32, factor, spacing, progress) -> dense (T, Z', Y, X)
FillFunction = Callable[[np.ndarray, int, tuple, Progress], np.ndarray]


@dataclass(frozen=True)
class ReconstructionResult:
    """The dense volume and how it was made."""

    volume: Volume
    method: str
    factor: int
    uncertainty: Volume | None = None
    seed: int | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def synthesized(self) -> tuple[int, ...]:
        return self.volume.synthesized


def resolve_factor(volume: Volume, factor: int | None = None, spacing: float | None = None) -> int:
    """The integer upsampling factor from either ``factor`` or a target ``spacing`` in mm."""
    if (factor is None) == (spacing is None):
        raise InputError("give exactly one of factor (e.g. 2) or spacing (target slice spacing in mm)")
    if factor is not None:
        if isinstance(factor, bool) or int(factor) != factor or factor < 1:
            raise InputError(f"factor must be a positive integer, not {factor!r}")
        return int(factor)
    if not spacing or spacing <= 0:
        raise InputError(f"spacing must be a positive number of mm, not {spacing!r}")
    ratio = volume.slice_spacing / float(spacing)
    nearest = max(1, round(ratio))
    if abs(ratio - nearest) > 1e-3 * max(1.0, ratio):
        options = ", ".join(f"{volume.slice_spacing / k:g} mm" for k in range(max(1, nearest - 1), nearest + 2))
        raise InputError(
            f"spacing {spacing:g} mm does not divide the slice spacing {volume.slice_spacing:g} mm "
            f"into whole steps; choose one of {options} (or use factor=)"
        )
    return nearest


def _baseline_fill(method: str) -> FillFunction:
    def fill(array: np.ndarray, factor: int, spacing: tuple, progress: Progress) -> np.ndarray:
        from calid.baselines import interpolate

        frames = []
        with progress.stage(f"interpolate ({method})", array.shape[0]) as stage:
            for frame in array:
                frames.append(interpolate(frame, factor, method=method, spacing=spacing))
                stage.advance()
        return np.stack(frames)

    return fill


def _fill_function(method: str) -> FillFunction:
    if method in BASELINES:
        return _baseline_fill(method)
    raise InputError(f"method must be one of {', '.join(('auto', *BASELINES))}, not {method!r}")


def resolve_method(method: str) -> tuple[str, tuple[str, ...]]:
    """Turn ``"auto"`` into a concrete method and say why."""
    if method != "auto":
        return method, ()
    return BEST_BASELINE, (
        f"no trained CaLID model is installed: used the best classical baseline ({BEST_BASELINE})",
    )


def to_output_dtype(dense: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Map synthesised values to the input's type (round and clip for integers)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(dense), info.min, info.max).astype(dtype)
    return dense.astype(dtype if np.issubdtype(dtype, np.floating) else np.float32)


def reconstruct(
    volume: Volume,
    factor: int | None = None,
    spacing: float | None = None,
    method: str = "auto",
    seed: int | None = 0,
    progress: Progress | ProgressMode | None = None,
) -> ReconstructionResult:
    """Dense volume with slice spacing divided by ``factor``; acquired slices unchanged.

    The dense grid keeps the input's first-slice position and directions; acquired
    slice ``i`` becomes slice ``i * factor`` and is copied bit-exact. All others are
    listed in ``result.volume.synthesized``.
    """
    from calid.validate import validate_volume

    validate_volume(volume)
    factor = resolve_factor(volume, factor, spacing)
    method, notes = resolve_method(method)
    fill = _fill_function(method)
    progress = as_progress(progress)
    started = time.perf_counter()

    source = volume.array if volume.is_cine else volume.array[None]
    dense = fill(source.astype(np.float32), factor, volume.spacing, progress)
    dense = to_output_dtype(dense, source.dtype)
    acquired = np.arange(volume.n_slices) * factor
    dense[:, acquired] = source  # measured data passes through untouched
    synthesized = tuple(sorted(set(range(dense.shape[1])) - set(acquired.tolist())))

    out = volume.replace(
        array=dense if volume.is_cine else dense[0],
        synthesized=synthesized,
        **volume.dense_geometry(factor),
    )
    return ReconstructionResult(
        volume=out,
        method=method,
        factor=factor,
        seed=seed,
        seconds=time.perf_counter() - started,
        stage_seconds=dict(progress.stage_seconds),
        notes=notes,
    )
