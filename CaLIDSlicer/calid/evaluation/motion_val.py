"""Quick validation of the motion guide against demons on ACDC validation volumes.

The held-out-slice test of :mod:`calid.evaluation.evaluate`, cut down to what training needs: keep
every 2nd slice, rebuild each dropped one at a = 0.5, score inside the heart box (labels
+ 10 px). Intensities are divided by the 99.5th percentile of the kept slices, as in
``calid evaluate``. Demons scores are computed once and cached beside the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calid.evaluation import metrics


@dataclass(frozen=True)
class ValCase:
    """Kept slices (normalised), the dropped truth, the heart box and the in-plane spacing."""

    name: str
    kept: np.ndarray
    truth: np.ndarray
    box: tuple[int, int, int, int]
    spacing_xy: tuple[float, float]


def load_val_cases(data_dir: str | Path, limit: int | None = None) -> list[ValCase]:
    """ACDC validation ED/ES volumes with labels, held out at keep-every-2."""
    from calid.evaluation.datasets import find_cases, load_case
    from calid.evaluation.evaluate import hold_out, intensity_scale

    cases = []
    for case in find_cases(data_dir, "val")[:limit]:
        if case.kind != "3d" or not case.has_labels:
            continue
        loaded = load_case(case)
        held = hold_out(loaded.volume, 2)
        scale = intensity_scale(held.sparse)
        truth = held.truth.array.astype(np.float32) / scale
        box = metrics.heart_box(loaded.labels[: truth.shape[0]], 10)
        if box is None:
            continue
        cases.append(ValCase(case.name, truth[::2], truth[1::2], box, tuple(loaded.volume.spacing[:2])))
    return cases


def score(pred: np.ndarray, truth: np.ndarray, box) -> dict[str, float]:
    """Heart-box PSNR (pooled over the dropped slices), mean SSIM and contrast ratio."""
    y0, y1, x0, x1 = box
    p, t = pred[:, y0:y1, x0:x1], truth[:, y0:y1, x0:x1]
    return {"psnr": metrics.psnr(p, t), "ssim": float(np.mean([metrics.ssim(a, b) for a, b in zip(p, t)])),
            "contrast": metrics.contrast_ratio(p, t)}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def demons_scores(cases: list[ValCase], cache: Path | None = None) -> dict[str, float]:
    """Mean heart-box scores of ``registration`` (demons) on the cases, cached in ``cache``."""
    from calid.methods.registration import morph_between

    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("cases") == [c.name for c in cases]:
            return stored["scores"]
    rows = []
    for case in cases:
        pred = np.stack([morph_between(case.kept[z], case.kept[z + 1], np.array([0.5]), case.spacing_xy)[0]
                         for z in range(case.kept.shape[0] - 1)])
        rows.append(score(pred, case.truth, case.box))
    result = mean_scores(rows)
    if cache is not None:
        cache.write_text(json.dumps({"cases": [c.name for c in cases], "scores": result}))
    return result


def motion_scores(model, cases: list[ValCase], device=None) -> dict[str, float]:
    """Mean heart-box scores of the motion guide on the cases."""
    from calid.models.motion import interpolate

    rows = []
    for case in cases:
        pred = interpolate(model, case.kept[:-1], case.kept[1:], [0.5], device=device)[:, 0]
        rows.append(score(pred, case.truth, case.box))
    return mean_scores(rows)
