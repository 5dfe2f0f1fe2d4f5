"""The provenance record every report shares: ordered stage times, device, table rows."""

from __future__ import annotations

from pathlib import Path

from calid.io.provenance import device_info, ordered_stages, provenance, provenance_rows

MODEL = {"name": "calid-denoiser-acdc", "version": "2.0.0", "kind": "denoiser", "sha256": "ab" * 32, "path": "/m"}


def test_stages_come_in_pipeline_order_whatever_order_they_ran_in():
    stages = ordered_stages({"write": 1, "segment": 2, "decode": 3, "custom": 4, "read": 5, "interpolate (linear)": 6})
    assert list(stages) == ["read", "interpolate (linear)", "decode", "segment", "write", "custom"]


def test_cpu_device_names_the_processor_and_torch():
    info = device_info("cpu")
    assert info["type"] == "cpu" and info["name"]
    import torch

    assert info["torch"] == torch.__version__


def test_record_and_its_table_rows():
    record = provenance([MODEL], {"steps": 2, "model": Path("/x")}, "cpu", {"sample": 1.23456, "read": 0.5})
    assert record["sampler"] == {"steps": 2, "model": "/x"} and list(record["stage_seconds"]) == ["read", "sample"]
    rows = dict(provenance_rows(record))
    assert rows["Model (denoiser)"] == f"calid-denoiser-acdc 2.0.0, SHA-256 {'ab' * 32}"
    assert rows["Time: sample (s)"] == "1.23" and rows["Time: read (s)"] == "0.50"
    assert rows["Device"].startswith("cpu (") and rows["calid version"]
    assert dict(provenance_rows(provenance([], {}, "cpu", {})))["Models"] == "none (classical method)"
    assert provenance_rows({"method": "linear"}) == []  # a report from before provenance: no invented rows
