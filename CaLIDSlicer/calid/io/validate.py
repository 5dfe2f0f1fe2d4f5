"""Checks that refuse unusable inputs early, with a message that says how to fix them.

Readers call :func:`check_slice_positions`; :func:`calid.methods.reconstruction.reconstruct`
calls :func:`validate_volume`; commands call :func:`check_output_path` and
:func:`check_fits_in_memory` before any heavy work starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from calid.errors import InputError, OutputError
from calid.io.volume import Volume

#: Relative tolerance on slice gaps before a stack counts as non-uniform.
SPACING_TOLERANCE = 0.01
#: How far (mm) slice positions may drift off the slice normal before we refuse.
DRIFT_TOLERANCE_MM = 0.1

GIB = 1024**3


def validate_volume(volume: Volume, *, min_slices: int = 2) -> None:
    """Refuse a volume the reconstruction cannot use (too few slices, NaN/Inf, constant)."""
    if min(volume.slice_shape) < 2:
        raise InputError(
            f"the input must be a stack of 2D short-axis slices, not slices of shape {volume.slice_shape}; "
            "check that the file holds images and not a line or a table"
        )
    if volume.n_slices < min_slices:
        raise InputError(
            f"the input must have at least {min_slices} slices to interpolate between, not {volume.n_slices}; "
            "give the whole short-axis stack (a DICOM series folder or a 3D/4D NIfTI), not a single image"
        )
    _check_finite(volume.array)
    if volume.array.size and np.ptp(volume.array) == 0:
        raise InputError(
            f"the input is constant (every voxel is {volume.array.flat[0]}); "
            "check that the right series or file was chosen"
        )


def _check_finite(array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if count:
        where = np.argwhere(bad)
        axes = "(t, z, y, x)" if array.ndim == 4 else "(z, y, x)"
        slices = sorted({int(i) for i in where[:, -3]})
        raise InputError(
            f"the input must be finite, not hold {count} NaN/Inf voxel(s) (in slice(s) {slices[:10]}"
            f"{'...' if len(slices) > 10 else ''}; first at {axes} = {tuple(int(i) for i in where[0])}); "
            "replace them (e.g. with 0) or re-export the images"
        )


def check_slice_positions(positions, normal, spacing: float) -> None:
    """Refuse slices that are unevenly spaced or do not lie along ``normal``.

    ``positions`` are the (N, 3) LPS positions of the first voxel of each slice in
    order, ``normal`` the unit slice normal and ``spacing`` the expected gap (mm).
    """
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    if len(positions) < 2:
        return
    normal = np.asarray(normal, dtype=float)
    normal = normal / np.linalg.norm(normal)
    offsets = positions - positions[0]
    along = offsets @ normal
    drift = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    if drift.max() > DRIFT_TOLERANCE_MM:
        worst = int(np.argmax(drift))
        raise InputError(
            f"slice positions must lie along the slice normal, but slice {worst} drifts {drift[worst]:.2f} mm "
            f"sideways from slice 0; the series is not one parallel short-axis stack (check for mixed "
            "series or a localiser in the folder)"
        )
    gaps = np.diff(along)
    bad = np.flatnonzero(np.abs(np.abs(gaps) - spacing) > SPACING_TOLERANCE * max(spacing, 1e-6))
    if bad.size:
        i = int(bad[0])
        measured = ", ".join(f"{g:.2f}" for g in np.abs(gaps))
        raise InputError(
            f"slice spacing must be uniform, not {abs(gaps[i]):.2f} mm between slices {i} and {i + 1} where "
            f"{spacing:.2f} mm is expected (gaps measured: {measured} mm); a slice may be missing or duplicated: "
            "remove the odd slices or resample the stack to a regular grid"
        )


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def estimate_bytes(shape, dtype, factor: int, samples: int = 1) -> int:
    """Bytes a reconstruction adds to its input (the networks' own working set is bounded apart).

    The dense output in the input's type; the latents of the acquired slices (4 float32
    channels at 1/16 of the pixels: 1 byte per acquired voxel); two float32 frames of the
    dense grid (a baseline's working copies); with ``samples > 1`` the float32 uncertainty map.
    """
    shape = tuple(int(s) for s in shape)
    z_axis = len(shape) - 3
    dense = list(shape)
    dense[z_axis] = (shape[z_axis] - 1) * int(factor) + 1
    voxels = int(np.prod(dense))
    frame = int(np.prod(dense[z_axis:]))
    uncertainty = 4 * voxels if samples > 1 else 0
    return voxels * np.dtype(dtype).itemsize + int(np.prod(shape)) + 2 * 4 * frame + uncertainty


def check_fits_in_memory(shape, dtype, factor: int, available: int | None = None, samples: int = 1) -> int:
    """Refuse a reconstruction that would not fit in RAM; returns the estimated bytes."""
    needed = estimate_bytes(shape, dtype, factor, samples)
    if available is None:
        available = available_memory_bytes()
    if available is not None and needed > available:
        raise InputError(
            f"the reconstruction needs ~{needed / GIB:.1f} GiB, {available / GIB:.1f} GiB available; "
            "use a smaller factor, reconstruct fewer frames at a time, or crop the images around the heart"
        )
    return needed


def check_output_path(input_path: str | Path | None, output_path: str | Path) -> Path:
    """Refuse writing over the input or into a missing / read-only folder; returns the output path."""
    output = Path(output_path)
    if input_path is not None and output.exists() and Path(input_path).exists():
        if output.resolve() == Path(input_path).resolve() or os.path.samefile(output, input_path):
            raise OutputError(f"output {str(output)!r} must differ from the input; choose another file name")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {str(folder)!r} does not exist; create it or choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {str(folder)!r} is not writable; choose a folder you can write to")
    return output
