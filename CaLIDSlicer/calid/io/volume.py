"""The one in-memory type: an image array with its physical geometry.

Geometry follows ITK / SimpleITK on-disk conventions (LPS world coordinates):
``origin`` is the LPS position (mm) of the centre of voxel (x=0, y=0, z=0),
``spacing`` is (x, y, z) in mm, and ``direction`` is a 3x3 matrix whose
*columns* are the unit vectors of the x, y and z index axes in LPS.
Conversion to Slicer's RAS happens in one place only: :func:`lps_to_ras_matrix`.

The array is indexed like SimpleITK's ``GetArrayFromImage``: ``(Z, Y, X)`` for a
3D stack and ``(T, Z, Y, X)`` for a cine (frames first).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

Vector3 = tuple[float, float, float]

#: Diagonal flip between LPS and RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _as_vector3(value, name: str) -> Vector3:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,):
        raise ValueError(f"{name} must have 3 components (x, y, z), not {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, not {tuple(arr)}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Volume:
    """A 3D stack ``(Z, Y, X)`` or a cine ``(T, Z, Y, X)`` with LPS geometry.

    ``frame_times`` (ms, one per frame) is set for cine only.
    ``synthesized`` lists the slice indices (along Z) that were generated rather
    than acquired, so every consumer can tell measured data from synthesis.
    """

    array: np.ndarray
    spacing: Vector3 = (1.0, 1.0, 1.0)
    origin: Vector3 = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    frame_times: tuple[float, ...] | None = None
    synthesized: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim not in (3, 4):
            raise ValueError(
                f"array must be 3D (Z, Y, X) or 4D (T, Z, Y, X), not {array.ndim}D with shape {array.shape}"
            )
        object.__setattr__(self, "array", array)
        spacing = _as_vector3(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise ValueError(f"spacing must be positive, not {spacing}")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _as_vector3(self.origin, "origin"))
        direction = np.asarray(self.direction, dtype=float)
        if direction.size != 9:
            raise ValueError(f"direction must be a 3x3 matrix, not {direction.size} values")
        direction = direction.reshape(3, 3)
        if abs(abs(np.linalg.det(direction)) - 1.0) > 1e-3:
            raise ValueError(f"direction must be orthonormal, not {direction.tolist()}")
        object.__setattr__(self, "direction", direction)
        if self.frame_times is not None:
            times = tuple(float(t) for t in self.frame_times)
            if array.ndim != 4 or len(times) != array.shape[0]:
                raise ValueError(
                    f"frame_times must have one entry per frame ({self.n_frames}), not {len(times)}"
                )
            object.__setattr__(self, "frame_times", times)
        synthesized = tuple(sorted(int(i) for i in self.synthesized))
        if synthesized and (synthesized[0] < 0 or synthesized[-1] >= self.n_slices):
            raise ValueError(f"synthesized indices must lie in [0, {self.n_slices}), not {synthesized}")
        object.__setattr__(self, "synthesized", synthesized)

    # -- shape -------------------------------------------------------------
    @property
    def is_cine(self) -> bool:
        return self.array.ndim == 4

    @property
    def n_frames(self) -> int:
        return self.array.shape[0] if self.is_cine else 1

    @property
    def n_slices(self) -> int:
        return self.array.shape[-3]

    @property
    def slice_shape(self) -> tuple[int, int]:
        """In-plane shape ``(Y, X)``."""
        return self.array.shape[-2], self.array.shape[-1]

    @property
    def slice_spacing(self) -> float:
        return self.spacing[2]

    @property
    def acquired(self) -> tuple[int, ...]:
        """Slice indices that hold measured data."""
        synth = set(self.synthesized)
        return tuple(i for i in range(self.n_slices) if i not in synth)

    # -- geometry ----------------------------------------------------------
    @property
    def slice_normal(self) -> np.ndarray:
        """Unit vector (LPS) along which slice index grows."""
        return self.direction[:, 2].copy()

    def index_to_physical(self, index_xyz) -> np.ndarray:
        """LPS position (mm) of continuous index(es) ``(..., 3)`` given as (x, y, z)."""
        idx = np.asarray(index_xyz, dtype=float)
        return np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ self.direction.T

    def slice_positions(self) -> np.ndarray:
        """LPS position of the first voxel of every slice, shape ``(Z, 3)``."""
        k = np.arange(self.n_slices, dtype=float)
        return self.index_to_physical(np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1))

    def affine_lps(self) -> np.ndarray:
        """4x4 matrix from (x, y, z) index to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)
        affine[:3, 3] = self.origin
        return affine

    def affine_ras(self) -> np.ndarray:
        """4x4 matrix from (x, y, z) index to RAS mm (Slicer's IJKToRAS)."""
        flip = np.eye(4)
        flip[:3, :3] = LPS_TO_RAS
        return flip @ self.affine_lps()

    def same_geometry(self, other: "Volume", atol: float = 1e-6) -> bool:
        return (
            self.array.shape[-3:] == other.array.shape[-3:]
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    # -- derived volumes -----------------------------------------------------
    def replace(self, **changes) -> "Volume":
        """A copy with some fields changed (geometry is re-validated)."""
        return dataclasses.replace(self, **changes)

    def frame(self, t: int) -> "Volume":
        """Frame ``t`` of a cine as a 3D volume (a 3D volume returns itself for t=0)."""
        if not self.is_cine:
            if t != 0:
                raise IndexError(f"a 3D volume has only frame 0, not {t}")
            return self
        return self.replace(array=self.array[t], frame_times=None)

    def frames(self) -> Iterator["Volume"]:
        for t in range(self.n_frames):
            yield self.frame(t)

    def dense_slice_count(self, factor: int) -> int:
        """Slices after upsampling by an integer factor (first and last slice kept)."""
        return (self.n_slices - 1) * factor + 1

    def dense_geometry(self, factor: int) -> dict:
        """Spacing/origin/direction of the stack upsampled ``factor`` times along Z.

        The first slice stays where it is and slice spacing is divided by the
        factor, so acquired slice ``i`` lands on dense slice ``i * factor``.
        """
        if int(factor) != factor or factor < 1:
            raise ValueError(f"factor must be a positive integer, not {factor!r}")
        sx, sy, sz = self.spacing
        return {
            "spacing": (sx, sy, sz / factor),
            "origin": self.origin,
            "direction": self.direction.copy(),
        }


def lps_to_ras_matrix(matrix_lps: np.ndarray) -> np.ndarray:
    """Convert a 4x4 index-to-LPS matrix to index-to-RAS (and back: it is an involution)."""
    flip = np.eye(4)
    flip[:3, :3] = LPS_TO_RAS
    return flip @ np.asarray(matrix_lps, dtype=float)
