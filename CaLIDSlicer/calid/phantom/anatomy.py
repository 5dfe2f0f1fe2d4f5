"""The phantom's anatomy: an analytic beating heart and its surroundings, in mm and time.

Stack coordinates: x to the image right (patient left), y down (posterior), z from the
LV base at end-diastole (z = 0) towards the apex; in-plane (0, 0) is the image centre.
The LV is a sheared, truncated half prolate ellipsoid whose cavity volume follows
``1 - EF * c(t)`` exactly and whose wall volume is conserved, so the wall thickens in
systole while the base descends towards the fixed apex. The RV is an ellipse beside the
septum minus the LV (a crescent) that shrinks to nothing before the apex; atria sit
above the base. Everything is a continuous function of position, so any slice
spacing samples the same heart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calid.segmentation.labels import LV, MYO, RV

# Nominal LV at end-diastole (mm): cavity and epicardial equator radii, apex depths below the base.
ENDO_RADIUS, EPI_RADIUS, ENDO_APEX, EPI_APEX = 28.5, 37.5, 84.0, 93.0
ATRIUM_RADIUS, ATRIUM_DEPTH, ATRIAL_WALL = 19.0, 22.0, 2.5
RV_AXES, RV_WALL, RV_LENGTH = (40.0, 54.0), 3.0, 0.8  # semi-axes, wall, fraction of the LV length
ECCENTRICITY, ES_PHASE, BASE_DESCENT = 1.06, 0.35, 0.2  # descent: fraction of EF x LV length
#: SSFP-like intensities (blood = 1): bright blood, dark muscle, grey tissue, black lung.
SSFP = {"blood": 1.0, "myo": 0.22, "tissue": 0.42, "fat": 0.85, "lung": 0.04, "liver": 0.32, "bone": 0.15}


@dataclass(frozen=True)
class Anatomy:
    """One heart: size factors, LV axis centre at the base (mm), tilt (mm/mm), twist (rad/mm)."""

    radius: float
    length: float
    centre: tuple[float, float]
    tilt: tuple[float, float]
    twist: float
    rv: float

    @property
    def epi_apex(self) -> float:
        return EPI_APEX * self.length

    @property
    def reach(self) -> float:
        """How far (mm) the heart extends from the LV axis in-plane."""
        return (0.5 * EPI_RADIUS + max(RV_AXES) * self.rv) * self.radius + RV_WALL


def draw_anatomy(seed: int) -> Anatomy:
    """The seed's heart, drawn before anything else so the rest is deterministic."""
    rng = np.random.default_rng([int(seed) % 2**63, 0])
    jitter = lambda spread: float(rng.uniform(-spread, spread))  # noqa: E731
    return Anatomy(1 + jitter(0.08), 1 + jitter(0.07), (14 + jitter(5), -6 + jitter(5)),
                   (0.1 + jitter(0.05), 0.07 + jitter(0.05)), 0.012 + jitter(0.006), 1 + jitter(0.1))


def contraction(phase: np.ndarray) -> np.ndarray:
    """0 at end-diastole (phase 0), 1 at end-systole (phase 0.35); smooth and periodic."""
    phase = np.mod(phase, 1.0)
    systole = 0.5 - 0.5 * np.cos(np.pi * phase / ES_PHASE)
    diastole = 0.5 + 0.5 * np.cos(np.pi * (phase - ES_PHASE) / (1.0 - ES_PHASE))
    return np.where(phase <= ES_PHASE, systole, diastole)


def axis_centre(h: Anatomy, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LV axis in-plane centre (mm) and ellipse angle at depth z: tilted, curved, twisted."""
    cx = h.centre[0] + h.tilt[0] * z + 2e-4 * (z - 40.0) ** 2
    return cx, h.centre[1] + h.tilt[1] * z, 0.5 + h.twist * z


def radii(h: Anatomy, z: np.ndarray, c: np.ndarray, ef: float) -> dict[str, np.ndarray]:
    """Radii (mm) of each structure at depths z (S,) for contractions c (T, 1)."""
    endo_apex, endo_r, epi_r = ENDO_APEX * h.length, ENDO_RADIUS * h.radius, EPI_RADIUS * h.radius
    descent = BASE_DESCENT * ef * endo_apex * c
    endo_len, epi_len = endo_apex - descent, h.epi_apex - descent
    endo_eq = endo_r * np.sqrt((1 - ef * c) / (1 - descent / endo_apex))  # volume (1 - EF c) x ED
    wall = epi_r**2 * h.epi_apex - endo_r**2 * endo_apex  # myocardial volume, conserved
    epi_eq = np.sqrt((endo_eq**2 * endo_len + wall) / epi_len)
    w = z - descent  # depth below the moving base
    ventricle = w >= 0
    profile = lambda length: np.sqrt(np.clip(1 - (w / length) ** 2, 0, None))  # noqa: E731
    atrium = ATRIUM_RADIUS * h.radius * profile(ATRIUM_DEPTH)
    endo = np.where(ventricle, endo_eq * profile(endo_len), atrium)
    epi = np.where(ventricle, epi_eq * profile(epi_len), np.where(atrium > 0, atrium + ATRIAL_WALL, 0.0))
    rv_scale = np.where(ventricle, np.sqrt(profile(RV_LENGTH * endo_len)), profile(ATRIUM_DEPTH))
    rv_scale = rv_scale * h.rv * h.radius * np.sqrt(1 - 0.8 * ef * c)
    return {"endo": endo, "epi": epi, "rv_scale": np.maximum(rv_scale, 1e-3), "ventricle": ventricle}


def _inside(signed_distance: np.ndarray, pixel: float) -> np.ndarray:
    """Fraction of a pixel inside a shape (edges anti-aliased over one pixel)."""
    return np.clip(0.5 - signed_distance / pixel, 0.0, 1.0)


def _ellipse_distance(x, y, cx, cy, a, b) -> np.ndarray:
    return (np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2) - 1.0) * np.sqrt(a * b)


def surroundings(x: np.ndarray, y: np.ndarray, z: np.ndarray, pixel: float) -> np.ndarray:
    """Chest wall, fat, lungs, liver dome, aorta and spine at depths z (S,): (S, Y, X)."""
    z = z[:, None, None]
    lerp = lambda val, target, dist: val + (target - val) * _inside(dist, pixel)  # noqa: E731
    body = _ellipse_distance(x, y, 0.0, 18.0, 150.0, 112.0)
    val = SSFP["fat"] * _inside(body, pixel)
    val = lerp(val, SSFP["tissue"], body + 9.0)
    val = lerp(val, SSFP["lung"], _ellipse_distance(x, y, -80.0, 8.0, 42.0 - 0.1 * z, 66.0))
    val = lerp(val, SSFP["lung"], _ellipse_distance(x, y, 88.0, 14.0, 38.0 - 0.1 * z, 62.0))
    dome = 70.0 * np.sqrt(np.clip((z + 10.0) / 110.0, 1e-6, None))  # the liver rises towards the apex
    val = lerp(val, SSFP["liver"], _ellipse_distance(x, y, -35.0, 175.0 - dome, 90.0, 60.0))
    val = lerp(val, SSFP["blood"], np.hypot(x - 38.0, y - 72.0) - 11.0)  # descending aorta
    return lerp(val, SSFP["bone"], np.hypot(x - 2.0, y - 98.0) - 17.0)


def coil_bias(x: np.ndarray, y: np.ndarray, z: np.ndarray, strength: float) -> np.ndarray:
    """Smooth multiplicative coil sensitivity (S, Y, X), brighter towards the anterior coil."""
    field = -0.9 * y / 150.0 + 0.35 * x / 150.0 - 0.2 * (x * y) / 150.0**2 + 0.25 * z[:, None, None] / 150.0
    return np.exp(strength * field).astype(np.float32)


def render_heart(h: Anatomy, z_sub: np.ndarray, n_sub: int, phases: np.ndarray, ef: float,
                 x: np.ndarray, y: np.ndarray, background: np.ndarray, pixel: float):
    """Image (T, Z, h, w) averaged over each slice's ``n_sub`` sub-slices, labels at slice centres.

    Distances to the LV axis and RV centre are fixed per sub-slice; per frame only the
    radii change, so each frame costs a handful of array operations.
    """
    shapes = radii(h, z_sub[None, :], contraction(phases)[:, None], ef)
    cx, cy, angle = (v[:, None, None] for v in axis_centre(h, z_sub))
    u, v = x - cx, y - cy
    cos, sin = np.cos(angle), np.sin(angle)
    rho = np.sqrt((ECCENTRICITY * (u * cos + v * sin)) ** 2 + ((v * cos - u * sin) / ECCENTRICITY) ** 2)
    offset = 0.5 * radii(h, z_sub, np.zeros(1), ef)["epi"][:, None, None]
    ru, rv = u + 0.94 * offset, v + 0.34 * offset  # RV centre: image-left and anterior of the LV
    rv_u2, rv_v2 = (0.94 * ru + 0.34 * rv) ** 2, (0.94 * rv - 0.34 * ru) ** 2
    centre = np.arange(n_sub // 2, len(z_sub), n_sub)
    image = np.empty((len(phases), len(centre)) + background.shape[-2:], np.float32)
    labels = np.zeros(image.shape, np.uint8)
    for t in range(len(phases)):
        endo, epi, scale = (shapes[k][t][:, None, None].astype(np.float32) for k in ("endo", "epi", "rv_scale"))
        a, b = RV_AXES[0] * scale, RV_AXES[1] * scale
        rv_dist = (np.sqrt(rv_u2 / a**2 + rv_v2 / b**2) - 1.0) * np.sqrt(a * b)
        val = background + (SSFP["myo"] - background) * _inside(rv_dist - RV_WALL, pixel)
        val += (SSFP["blood"] - val) * _inside(rv_dist, pixel)
        val += (SSFP["myo"] - val) * _inside(rho - epi, pixel)
        val += (SSFP["blood"] - val) * _inside(rho - endo, pixel)
        image[t] = val.reshape((-1, n_sub) + val.shape[1:]).mean(axis=1)
        ventricle, r = shapes["ventricle"][t][centre, None, None], rho[centre]
        labels[t][ventricle & (rv_dist[centre] < 0) & (r >= epi[centre])] = RV
        labels[t][ventricle & (r < epi[centre])] = MYO
        labels[t][ventricle & (r < endo[centre])] = LV
    return image, labels
