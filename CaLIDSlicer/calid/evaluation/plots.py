"""One PNG per metric of a ``calid evaluate`` run: methods side by side, every volume shown.

A table of mean ± std hides whether one method wins on every case or on a few outliers;
a box per method with every volume's value drawn over it (a strip, jittered sideways)
shows the spread and the outliers at once. Written into the folder ``--plots DIR`` as
``DIR/<metric>.png`` (e.g. ``psnr.png``, ``ssim_heart.png``, ``dice_lv.png``), one file per
metric that has at least one finite value; a metric that does not apply (NaN everywhere,
e.g. heart-box scores without labels) gets no plot.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from calid.evaluation.evaluate import Evaluation
from calid.evaluation.report import METRICS

DPI = 100


def metric_values(evaluation: Evaluation, metric: str) -> dict[str, np.ndarray]:
    """Finite per-volume values of ``metric`` for each method (methods in run order)."""
    methods = evaluation.settings.get("methods") or list(dict.fromkeys(r["method"] for r in evaluation.rows))
    values = {}
    for method in methods:
        column = [r.get(metric, float("nan")) for r in evaluation.rows if r["method"] == method]
        finite = np.asarray([v for v in column if isinstance(v, (int, float)) and math.isfinite(v)], dtype=float)
        if finite.size:
            values[method] = finite
    return values


def plot_metric(values: dict[str, np.ndarray], label: str, subtitle: str = "") -> bytes:
    """A box per method with every volume as a dot over it; returns PNG bytes (at least 1200 px wide)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(12.0, 2.2 * len(values)), 6.0), dpi=DPI)
    ax = fig.add_subplot()
    names = list(values)
    ax.boxplot([values[m] for m in names], widths=0.5, showfliers=False, medianprops={"color": "black"})
    jitter = np.random.default_rng(0)  # fixed: the same data give the same picture
    for position, name in enumerate(names, start=1):
        xs = position + jitter.uniform(-0.15, 0.15, size=values[name].size)
        ax.scatter(xs, values[name], s=14, alpha=0.6, color="#1a85ff", edgecolors="none", zorder=3)
        ax.scatter([position], [values[name].mean()], marker="D", s=40, color="#e66100", zorder=4)
    ax.set_xticks(range(1, len(names) + 1), [f"{m}\n(n = {values[m].size})" for m in names], fontsize=11)
    ax.set_ylabel(label, fontsize=12)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{label}{': ' + subtitle if subtitle else ''}\nbox: median and quartiles, whiskers 1.5 IQR; "
                 "dots: one per volume; orange diamond: mean", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_plots(evaluation: Evaluation, folder: Path, subtitle: str = "") -> list[Path]:
    """``folder/<metric>.png`` for every metric with a finite value; the folder is created if missing."""
    from calid.io.paths import atomic_path

    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    written = []
    for metric, label in METRICS.items():
        values = metric_values(evaluation, metric)
        if not values:
            continue
        path = folder / f"{metric}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(plot_metric(values, label, subtitle))
        written.append(path)
    return written
