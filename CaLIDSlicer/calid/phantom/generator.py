"""A synthetic short-axis cine of a beating heart, with labels, at any slice spacing.

The anatomy (:mod:`calid.phantom.anatomy`) is a continuous function of position (mm)
and time, and the noise of a slice depends only on the seed and the slice's position,
so one seed rendered at 10 mm and at 2.5 mm gives slices that are identical where the
positions coincide: the dense render is the ground truth for slice interpolation.
The seed also varies the heart a little (size, position, tilt, twist, RV size).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from calid.errors import InputError
from calid.phantom.anatomy import ATRIUM_DEPTH, axis_centre, coil_bias, draw_anatomy, render_heart, surroundings
from calid.io.volume import Volume

#: Partial volume: one sub-slice per this many mm of slice thickness (odd count, centre on the plane).
SUB_SLICE_MM = 6.0


@dataclass(frozen=True)
class PhantomParams:
    """What to render; lengths in mm. ``slice_thickness`` defaults to 0.8 x ``slice_spacing``."""

    n_slices: int = 12
    n_frames: int = 20
    size: tuple[int, int] = (256, 256)  # (Y, X)
    pixel_spacing: float = 1.4
    slice_spacing: float = 10.0
    slice_thickness: float | None = None
    ejection_fraction: float = 0.6
    heart_rate: float = 60.0
    noise: float = 0.03
    bias: float = 0.2
    oblique: bool = False
    seed: int = 0
    first_slice_mm: float | None = None
    as_3d: bool = False

    def __post_init__(self) -> None:
        size = (self.size, self.size) if np.isscalar(self.size) else tuple(self.size)
        object.__setattr__(self, "size", tuple(int(s) for s in size))
        checks = [
            (self.n_slices >= 2, "n_slices must be at least 2 (a stack to interpolate)", self.n_slices),
            (self.n_frames >= 1, "n_frames must be at least 1", self.n_frames),
            (len(self.size) == 2 and min(self.size) >= 16, "size must be (Y, X) with both >= 16", self.size),
            (self.pixel_spacing > 0, "pixel_spacing must be positive (mm)", self.pixel_spacing),
            (self.slice_spacing > 0, "slice_spacing must be positive (mm)", self.slice_spacing),
            (self.slice_thickness is None or self.slice_thickness > 0, "slice_thickness must be positive (mm)",
             self.slice_thickness),
            (0.0 <= self.ejection_fraction <= 0.85, "ejection_fraction must be in [0, 0.85]", self.ejection_fraction),
            (20.0 <= self.heart_rate <= 250.0, "heart_rate must be in [20, 250] bpm", self.heart_rate),
            (self.noise >= 0, "noise must be >= 0", self.noise),
            (0.0 <= self.bias < 1.0, "bias must be in [0, 1)", self.bias),
            (not self.as_3d or self.n_frames == 1, "n_frames must be 1 for a 3D phantom (as_3d)", self.n_frames),
        ]
        for ok, message, value in checks:
            if not ok:
                raise InputError(f"{message}, not {value!r}")

    @property
    def thickness(self) -> float:
        return self.slice_thickness if self.slice_thickness is not None else 0.8 * self.slice_spacing

    @property
    def first_slice(self) -> float:
        """Depth (mm below the end-diastolic base) of slice 0; by default the stack is centred on the LV."""
        if self.first_slice_mm is not None:
            return float(self.first_slice_mm)
        return draw_anatomy(self.seed).epi_apex / 2 - (self.n_slices - 1) * self.slice_spacing / 2


@dataclass(frozen=True)
class Phantom:
    image: Volume  # cine (T, Z, Y, X), or 3D (Z, Y, X) when n_frames == 1 and as_3d
    labels: Volume  # same geometry, uint8 ACDC values (1 RV, 2 LV myocardium, 3 LV)
    params: PhantomParams


def _direction(oblique: bool) -> np.ndarray:
    """Identity, or a double-oblique short-axis frame whose normal runs base -> apex (LPS)."""
    if not oblique:
        return np.eye(3)
    normal = np.array([0.55, -0.45, -0.70])  # the apex points left, anterior and inferior
    normal /= np.linalg.norm(normal)
    x_axis = np.array([1.0, 0.0, 0.0]) - normal[0] * normal
    x_axis /= np.linalg.norm(x_axis)
    return np.stack([x_axis, np.cross(normal, x_axis), normal], axis=1)


def _slice_noise(p: PhantomParams, depth_mm: float) -> np.ndarray:
    """Two Gaussian fields (2, T, Y, X) that depend only on the seed and the slice depth (um).

    SFC64 because drawing noise is the slowest step of the whole render.
    """
    key = np.random.SeedSequence([int(p.seed) % 2**63, 1, int(round(depth_mm * 1000.0)) % 2**63])
    return np.random.Generator(np.random.SFC64(key)).standard_normal((2, p.n_frames) + p.size, dtype=np.float32)


def _heart_window(p: PhantomParams, centre_x: np.ndarray, centre_y: np.ndarray, reach: float) -> tuple[slice, slice]:
    """Pixel window holding the whole heart; outside it the image is static surroundings."""
    spans = []
    for n, centres in ((p.size[0], centre_y), (p.size[1], centre_x)):
        to_pixel = lambda mm: mm / p.pixel_spacing + (n - 1) / 2  # noqa: E731
        first = int(np.clip(np.floor(to_pixel(centres.min() - reach)) - 1, 0, n))
        spans.append(slice(first, int(np.clip(np.ceil(to_pixel(centres.max() + reach)) + 2, first, n))))
    return spans[0], spans[1]


def make_phantom(params: PhantomParams | None = None, **overrides) -> Phantom:
    """Render the phantom: thick slices, coil bias and Rician noise; labels at the slice planes."""
    p = dataclasses.replace(params or PhantomParams(), **overrides)
    anatomy = draw_anatomy(p.seed)
    n_sub = 2 * int(round(p.thickness / (2 * SUB_SLICE_MM))) + 1
    depth = np.round(p.first_slice + p.slice_spacing * np.arange(p.n_slices), 6)  # equal in sparse and dense
    depth_sub = (depth[:, None] + p.thickness * ((np.arange(n_sub) + 0.5) / n_sub - 0.5)).reshape(-1)
    depth_sub = depth_sub.astype(np.float32)
    ys, xs = ((np.arange(n, dtype=np.float32) - (n - 1) / 2) * np.float32(p.pixel_spacing) for n in p.size)
    y, x = ys[:, None], xs[None, :]
    around = surroundings(x, y, depth_sub, p.pixel_spacing).astype(np.float32)
    centre_x, centre_y, _ = axis_centre(anatomy, np.linspace(-ATRIUM_DEPTH, anatomy.epi_apex, 64))
    rows, cols = _heart_window(p, centre_x, centre_y, anatomy.reach)
    heart, heart_labels = render_heart(anatomy, depth_sub, n_sub, np.arange(p.n_frames) / p.n_frames,
                                       p.ejection_fraction, x[:, cols], y[rows], around[:, rows, cols], p.pixel_spacing)
    image = np.empty((p.n_frames, p.n_slices) + p.size, np.float32)
    image[:] = around.reshape((p.n_slices, n_sub) + p.size).mean(axis=1)
    image[:, :, rows, cols] = heart
    labels = np.zeros(image.shape, np.uint8)
    labels[:, :, rows, cols] = heart_labels
    bias = coil_bias(x, y, depth.astype(np.float32), p.bias)
    for k, depth_mm in enumerate(depth):  # slice by slice: the arrays stay in cache
        image[:, k] *= bias[k]
        if p.noise > 0:
            real, imag = _slice_noise(p, depth_mm) * np.float32(p.noise)  # Rician: magnitude of complex noise
            image[:, k] = np.hypot(image[:, k] + real, imag)
    return _as_phantom(p, image, labels)


def _as_phantom(p: PhantomParams, image: np.ndarray, labels: np.ndarray) -> Phantom:
    """Wrap the arrays with the stack geometry: slice 0's image centre lies at LPS (0, 0, depth)."""
    direction = _direction(p.oblique)
    corner = np.array([-(p.size[1] - 1) / 2 * p.pixel_spacing, -(p.size[0] - 1) / 2 * p.pixel_spacing, p.first_slice])
    geometry = {"spacing": (p.pixel_spacing, p.pixel_spacing, p.slice_spacing),
                "origin": tuple(direction @ corner), "direction": direction}
    if p.as_3d:
        return Phantom(Volume(image[0], **geometry), Volume(labels[0], **geometry), p)
    times = tuple(60000.0 / p.heart_rate * np.arange(p.n_frames) / p.n_frames)
    return Phantom(Volume(image, frame_times=times, **geometry), Volume(labels, frame_times=times, **geometry), p)


def make_phantom_pair(factor: int, params: PhantomParams | None = None, **overrides) -> tuple[Phantom, Phantom]:
    """(sparse, dense) over the same extent; dense slice ``i * factor`` equals sparse slice ``i``.

    Both use the sparse slice thickness, so the dense stack is what the same scanner
    would give at the finer spacing (overlapping thick slices).
    """
    if isinstance(factor, bool) or int(factor) != factor or factor < 1:
        raise InputError(f"factor must be a positive integer, not {factor!r}")
    sparse = make_phantom(params, **overrides)
    p = sparse.params
    dense = make_phantom(p, n_slices=(p.n_slices - 1) * int(factor) + 1, slice_spacing=p.slice_spacing / factor,
                         slice_thickness=p.thickness, first_slice_mm=p.first_slice)
    return sparse, dense
