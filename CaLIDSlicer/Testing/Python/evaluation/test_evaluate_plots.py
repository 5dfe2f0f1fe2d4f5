"""``calid evaluate --plots``: one PNG per metric, methods side by side."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from calid.cli import main
from calid.evaluation.report import METRICS


@pytest.mark.slow
def test_evaluate_writes_one_plot_per_metric(tmp_path):
    plots, record = tmp_path / "plots", tmp_path / "eval.json"
    assert main(["evaluate", "phantom", "--phantom-count", "1", "--phantom-size", "48", "--methods", "nearest,linear",
                 "--json", str(record), "--plots", str(plots), "--progress", "none"]) == 0
    rows = json.loads(record.read_text())["rows"]
    measured = {k for row in rows for k, v in row.items() if isinstance(v, float) and not k.endswith("seconds")
                and k not in ("frame",)}
    expected = {f"{k}.png" for k in METRICS if k in measured}
    assert expected and {p.name for p in plots.iterdir()} == expected
    for path in plots.iterdir():
        with Image.open(path) as image:
            assert image.width >= 1200
