"""``calid bench`` through the real entry point (one tiny timed run)."""

from __future__ import annotations

import json

from calid.cli import main


def test_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--cases", "3d", "--methods", "linear", "--repeats", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| 3d 10x256x256 | linear |" in printed
    data = json.loads(out.read_text())
    row = data["rows"][0]
    assert row["shape_out"] == [37, 256, 256]
    times = row["median_seconds"]
    assert times["total"] >= times["read"] + times["write"] > 0
    assert row["peak_host_mib"] > 0
    assert "torch" in data["environment"]


def test_bench_refuses_unknown_case(capsys):
    assert main(["bench", "--cases", "4d"]) == 2
    assert "--cases must be among" in capsys.readouterr().err
