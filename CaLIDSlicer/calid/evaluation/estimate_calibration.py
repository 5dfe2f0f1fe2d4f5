"""Calibration rows for the time estimate's cost model, read from ``calid bench --json`` files.

It lives here, not in :mod:`calid.methods.estimate`, because it needs the bench's cases and
``methods`` knows nothing of ``evaluation`` (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from calid.evaluation.bench import CASES


def bench_calibration_rows(bench: dict) -> list[dict]:
    """:func:`calid.methods.estimate.fit_costs` rows from a ``calid bench --json`` file (factors from :data:`CASES`)."""
    rows = []
    for row in bench["rows"]:
        method, mode = {"calid-3d": ("calid", "3d"), "calid-2dt": ("calid", "2dt")}.get(row["method"], (row["method"], None))
        shape = row["shape_in"]
        frames, slices, height, width = (1, *shape) if len(shape) == 3 else shape
        if mode is None:  # plain "calid": what mode "auto" ran (2D+T for a cine, the bundled default)
            mode = "2dt" if len(shape) == 4 and method == "calid" else "3d"
        seconds = dict(row["median_seconds"])
        work = {"frames": frames, "slices": slices, "height": height, "width": width,
                "factor": CASES[row["case"]][1], "method": method, "mode": mode, "steps": row.get("steps") or 2,
                "guide": "registration" if "register" in seconds else "none"}
        seconds["read and write"] = seconds.get("read", 0.0) + seconds.get("write", 0.0)
        rows.append({"workload": work, "seconds": seconds})
    return rows
