"""Cardiac function from a labelmap: chamber volumes per frame, EDV/ESV/SV/EF, LV mass.

Two ways to turn labels into millilitres, so a dense reconstruction can be compared
with what the sparse acquisition alone gives:

- ``"voxels"``: every labelled voxel times the voxel volume (the dense segmentation);
- ``"discs"``: disc summation over the *acquired* slices only (area x slice distance),
  the clinical method on the sparse stack; synthesised slices are ignored.

On a stack without synthesised slices the two agree exactly.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from calid.errors import InputError
from calid.segmentation.labels import LV, MYO, RV
from calid.io.volume import Volume

Method = Literal["voxels", "discs"]
#: Density of myocardium (g/ml) used for LV mass.
MYOCARDIUM_DENSITY = 1.05
SUMMARY_UNITS = {
    "lv_edv": "ml", "lv_esv": "ml", "lv_sv": "ml", "lv_ef": "%",
    "rv_edv": "ml", "rv_esv": "ml", "rv_sv": "ml", "rv_ef": "%", "lv_mass": "g",
}


@dataclass(frozen=True)
class CardiacMeasures:
    """Per-frame volumes (ml) and the ED/ES frames they were summarised at."""

    method: Method
    lv_volume_ml: tuple[float, ...]
    rv_volume_ml: tuple[float, ...]
    myo_volume_ml: tuple[float, ...]
    ed_frame: int
    es_frame: int
    frame_times: tuple[float, ...] | None = None

    @property
    def n_frames(self) -> int:
        return len(self.lv_volume_ml)

    def summary(self) -> dict[str, float | None]:
        """EDV/ESV/SV/EF of both ventricles and LV mass at ED; with ED = ES (one frame) only EDV and mass."""
        values: dict[str, float | None] = {}
        for side, volumes in (("lv", self.lv_volume_ml), ("rv", self.rv_volume_ml)):
            edv, esv = volumes[self.ed_frame], volumes[self.es_frame]
            two_frames = self.ed_frame != self.es_frame
            values[f"{side}_edv"], values[f"{side}_esv"] = edv, esv if two_frames else None
            values[f"{side}_sv"] = edv - esv if two_frames else None
            values[f"{side}_ef"] = 100.0 * (edv - esv) / edv if two_frames and edv > 0 else None
        values["lv_mass"] = MYOCARDIUM_DENSITY * self.myo_volume_ml[self.ed_frame]
        return values

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary(), "units": SUMMARY_UNITS}

    def to_json(self, path: str | Path) -> Path:
        return _write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def to_csv(self, path: str | Path) -> Path:
        """Long format: one row per quantity (and frame) with its unit."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["quantity", "frame", "value", "unit", "method"])
        for key, value in self.summary().items():
            writer.writerow([key, "", "" if value is None else f"{value:.3f}", SUMMARY_UNITS[key], self.method])
        for key in ("lv_volume_ml", "rv_volume_ml", "myo_volume_ml"):
            for frame, value in enumerate(getattr(self, key)):
                writer.writerow([key[: -len("_ml")], frame, f"{value:.3f}", "ml", self.method])
        return _write_text(path, buffer.getvalue())

    def report(self) -> str:
        """A few lines for people."""
        s = self.summary()

        def fmt(value: float | None, unit: str) -> str:
            return "n/a" if value is None else f"{value:.1f} {unit}"

        how = "voxel counting" if self.method == "voxels" else "disc summation over acquired slices"
        return "\n".join([
            f"Cardiac measures ({how}; {self.n_frames} frame(s), ED frame {self.ed_frame}, ES frame {self.es_frame})",
            f"LV: EDV {fmt(s['lv_edv'], 'ml')}, ESV {fmt(s['lv_esv'], 'ml')}, SV {fmt(s['lv_sv'], 'ml')}, "
            f"EF {fmt(s['lv_ef'], '%')}, mass {fmt(s['lv_mass'], 'g')}",
            f"RV: EDV {fmt(s['rv_edv'], 'ml')}, ESV {fmt(s['rv_esv'], 'ml')}, SV {fmt(s['rv_sv'], 'ml')}, "
            f"EF {fmt(s['rv_ef'], '%')}",
        ])


def _write_text(path: str | Path, text: str) -> Path:
    from calid.io.paths import atomic_path

    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(path)


def structure_volumes_ml(labels: Volume, method: Method = "voxels") -> dict[int, float]:
    """Volume (ml) of RV, MYO and LV in one 3D labelmap."""
    if labels.is_cine:
        raise InputError("structure_volumes_ml needs one 3D frame; use measure() for a cine")
    sx, sy, sz = labels.spacing
    array = labels.array
    if method == "voxels":
        slices, thickness = array, sz
    elif method == "discs":
        acquired = np.asarray(labels.acquired)
        gap = float(np.median(np.diff(acquired))) if len(acquired) > 1 else 1.0
        slices, thickness = array[acquired], sz * gap
    else:
        raise InputError(f"method must be 'voxels' or 'discs', not {method!r}")
    pixel_ml = sx * sy * thickness / 1000.0
    return {value: float(np.count_nonzero(slices == value)) * pixel_ml for value in (RV, MYO, LV)}


def measure(
    labels: Volume | Sequence[Volume], *, method: Method = "voxels", ed: int | None = None, es: int | None = None
) -> CardiacMeasures:
    """Measures of a cine labelmap, a 3D labelmap, or a sequence of 3D labelmaps (e.g. ED and ES).

    Without ``ed``/``es``, ED is the frame of largest and ES of smallest LV volume.
    """
    frames = list(labels.frames()) if isinstance(labels, Volume) else list(labels)
    if not frames or not all(isinstance(frame, Volume) and not frame.is_cine for frame in frames):
        raise InputError("labels must be a Volume or a non-empty sequence of 3D Volumes")
    for frame in frames:
        if not np.issubdtype(frame.array.dtype, np.integer):
            raise InputError(f"labels must hold integer label values, not {frame.array.dtype}")
    per_frame = [structure_volumes_ml(frame, method) for frame in frames]
    lv = tuple(v[LV] for v in per_frame)
    ed = int(np.argmax(lv)) if ed is None else _frame_index(ed, len(frames), "ed")
    es = int(np.argmin(lv)) if es is None else _frame_index(es, len(frames), "es")
    times = labels.frame_times if isinstance(labels, Volume) else None
    return CardiacMeasures(method, lv, tuple(v[RV] for v in per_frame), tuple(v[MYO] for v in per_frame), ed, es, times)


def _frame_index(value: int, count: int, name: str) -> int:
    if not 0 <= int(value) < count:
        raise InputError(f"{name} frame must be in [0, {count}), not {value}")
    return int(value)
