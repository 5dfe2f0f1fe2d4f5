"""Summaries of an :class:`~calid.evaluation.evaluate.Evaluation`: a markdown table, CSV rows and a JSON record.

Means and standard deviations are over volumes (one 3D stack, or one frame of a
cine) and ignore NaN (a metric that does not apply, e.g. heart-box scores of a case
without labels). Per-patient means are kept beside them, because volumes of one
patient are not independent. In JSON, NaN becomes ``null`` and infinity ``"inf"``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from calid.evaluation.evaluate import Evaluation
from calid.io.jsonable import json_safe

#: Metric columns in display order with their table headers.
METRICS: dict[str, str] = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "psnr_heart": "PSNR heart (dB)",
    "ssim_heart": "SSIM heart",
    "contrast_heart": "Contrast heart",
    "gradient_heart": "Gradient heart",
    "dice_lv": "Dice LV",
    "dice_myo": "Dice MYO",
    "dice_rv": "Dice RV",
    "hd95_lv": "HD95 LV (mm)",
    "hd95_myo": "HD95 MYO (mm)",
    "hd95_rv": "HD95 RV (mm)",
}
#: The time column: the method's own reconstruction time, per 3D volume.
TIME_COLUMN = "Reconstruction s / volume"
TIME_FOOTNOTE = (f"{TIME_COLUMN}: the reconstruction alone (no segmentation, no scoring, no file reading), "
                 "per 3D volume (one frame of a cine), on this machine.")
ROW_FIELDS = ("case", "patient", "group", "kind", "frame", "method", "slices", "trimmed", "seconds", *METRICS)


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray([v for v in values if not (isinstance(v, float) and math.isnan(v))], dtype=float)
    if array.size == 0:
        return float("nan"), float("nan")
    if np.isinf(array).any():
        return float(np.mean(array)), float("nan")
    return float(array.mean()), float(array.std())


def summarize(evaluation: Evaluation) -> list[dict]:
    """One record per method: counts, mean/std per metric, seconds per volume, temporal error."""
    summary = []
    for method in evaluation.settings.get("methods") or sorted({r["method"] for r in evaluation.rows}):
        rows = [r for r in evaluation.rows if r["method"] == method]
        if not rows:
            continue
        record = {"method": method, "n_patients": len({r["patient"] for r in rows}), "n_volumes": len(rows)}
        for key in (k for k in METRICS if any(k in r for r in rows)):
            record[key], record[f"{key}_std"] = _mean_std([r.get(key, float("nan")) for r in rows])
        record["seconds"], record["seconds_std"] = _mean_std([r["seconds"] for r in rows])
        temporal = [r["temporal_error"] for r in evaluation.temporal if r["method"] == method]
        if temporal:
            record["temporal_error"], record["temporal_error_std"] = _mean_std(temporal)
            record["n_cines"] = len(temporal)
        summary.append(record)
    return summary


def per_patient(evaluation: Evaluation) -> list[dict]:
    """Mean of every metric over each patient's volumes, per method."""
    records = []
    keys = [k for k in METRICS if any(k in r for r in evaluation.rows)]
    for method in dict.fromkeys(r["method"] for r in evaluation.rows):
        for patient in dict.fromkeys(r["patient"] for r in evaluation.rows):
            rows = [r for r in evaluation.rows if r["method"] == method and r["patient"] == patient]
            if rows:
                means = {k: _mean_std([r.get(k, float("nan")) for r in rows])[0] for k in keys}
                records.append({"method": method, "patient": patient, "group": rows[0]["group"],
                                "n_volumes": len(rows), **means})
    return records


def _cell(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    if math.isinf(mean):
        return "inf"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def markdown(evaluation: Evaluation, title: str | None = None) -> str:
    """The summary as a markdown table, with counts and notes under it."""
    summary = summarize(evaluation)
    keys = [k for k in METRICS if any(not math.isnan(s.get(k, float("nan"))) for s in summary)]
    temporal = any("temporal_error" in s for s in summary)
    header = ["Method", *(METRICS[k] for k in keys)] + (["Temporal error"] if temporal else []) + [TIME_COLUMN]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summary:
        cells = [s["method"]] + [_cell(s[k], s[f"{k}_std"], 1 if k.startswith(("psnr", "hd95")) else 3) for k in keys]
        if temporal:
            cells.append(_cell(s.get("temporal_error", float("nan")), s.get("temporal_error_std", float("nan")), 4))
        cells.append(f"{s['seconds']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    if summary:
        first = summary[0]
        cines = f", {first['n_cines']} cines" if "n_cines" in first else ""
        lines += ["", f"n = {first['n_patients']} patients, {first['n_volumes']} volumes{cines}; "
                  f"keep every {evaluation.settings.get('keep_every')} slices, mean ± std over volumes.",
                  "", TIME_FOOTNOTE]
    if evaluation.notes:
        lines += ["", *(f"- {note}" for note in evaluation.notes)]
    return "\n".join(lines) + "\n"


def method_provenance(evaluation: Evaluation) -> dict[str, dict]:
    """Per method, the :func:`calid.io.provenance.provenance` record of its runs.

    ``stage_seconds`` are summed over the method's reconstructions (``reconstructions``
    says how many), ``segment`` included when Dice was computed; reading cases is shared
    by all methods and is not counted. Models are listed once each, in the order first used.
    """
    from calid.io.provenance import provenance

    records = {}
    for method in dict.fromkeys(run["method"] for run in evaluation.runs):
        runs = [run for run in evaluation.runs if run["method"] == method]
        models = list({(m["name"], m["sha256"]): m for run in runs for m in run["models"]}.values())
        stages: dict[str, float] = {}
        for run in runs:
            for stage, seconds in run["stage_seconds"].items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        records[method] = {**provenance(models, runs[0]["sampler"], runs[-1]["device"], stages), "reconstructions": len(runs)}
    return records


def to_json(evaluation: Evaluation, dataset: str) -> str:
    from calid import __version__

    record = {
        "calid_version": __version__,
        "dataset": dataset,
        "settings": evaluation.settings,
        "provenance": method_provenance(evaluation),
        "summary": summarize(evaluation),
        "per_patient": per_patient(evaluation),
        "rows": evaluation.rows,
        "temporal": evaluation.temporal,
        "notes": evaluation.notes,
    }
    return json.dumps(json_safe(record), indent=1) + "\n"


def write_json(evaluation: Evaluation, path: str | Path, dataset: str) -> Path:
    from calid.io.paths import atomic_path

    with atomic_path(path) as temp:
        temp.write_text(to_json(evaluation, dataset))
    return Path(path)


def write_csv(evaluation: Evaluation, path: str | Path) -> Path:
    """One line per volume and method (temporal errors are per cine: see the JSON)."""
    from calid.io.paths import atomic_path

    with atomic_path(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in evaluation.rows:
            writer.writerow({k: row.get(k, "") for k in ROW_FIELDS})
    return Path(path)
