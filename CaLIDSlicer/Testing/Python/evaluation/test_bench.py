"""``calid bench`` through the real entry point (one tiny timed run)."""

from __future__ import annotations

import json

import pytest

from calid.evaluation.bench import markdown_table
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


def _tiny_stack():
    import numpy as np

    from calid.io.volume import Volume

    rng = np.random.default_rng(3)
    return Volume(rng.integers(0, 1000, size=(3, 32, 32)).astype(np.int16), spacing=(1.5, 1.5, 8.0))


def test_pixel_comparator_is_timed_against_calid_at_equal_steps(tmp_path):
    pytest.importorskip("torch")
    from calid.evaluation.bench import bench_volume, speed_ratios
    from calid.methods.reconstruction import calid_model_available

    if not calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    rows = [bench_volume("tiny", _tiny_stack(), 2, method, tmp_path, repeats=1, device="cpu", extra={"steps": 1})
            for method in ("calid", "pixel-diffusion")]
    pixel = rows[1]
    assert pixel.shape_out == [5, 32, 32]
    assert pixel.steps == rows[0].steps == 1
    assert "UNTRAINED" in pixel.note and rows[0].note == ""
    assert pixel.median_seconds["sample"] > 0
    assert "encode" not in pixel.median_seconds and "decode" not in pixel.median_seconds
    (ratio,) = speed_ratios(rows)
    assert ratio["total_ratio"] == round(pixel.median_seconds["total"] / rows[0].median_seconds["total"], 2)
    assert ratio["sample_ratio"] > 0
    assert "pixel-diffusion (untrained, timing only)" in markdown_table(rows)


def test_pixel_comparator_needs_equal_steps_for_a_ratio(tmp_path):
    from calid.evaluation.bench import BenchRow, speed_ratios

    def row(method, steps):
        return BenchRow("3d", method, "cpu", 1, [3, 32, 32], [5, 32, 32], {"total": 1.0, "sample": 0.5}, steps=steps)

    assert speed_ratios([row("calid", 2), row("pixel-diffusion", 10)]) == []
    assert speed_ratios([row("calid", 2), row("pixel-diffusion", 2)])[0]["total_ratio"] == 1.0


def test_pixel_comparator_is_not_a_public_method():
    from calid.errors import InputError
    from calid.methods.reconstruction import reconstruct

    with pytest.raises(InputError, match="method must be one of"):
        reconstruct(_tiny_stack(), factor=2, method="pixel-diffusion")


def _tiny_cine():
    import numpy as np

    from calid.io.volume import Volume

    rng = np.random.default_rng(4)
    return Volume(rng.integers(0, 1000, size=(3, 3, 32, 32)).astype(np.int16), spacing=(1.5, 1.5, 8.0),
                  frame_times=(0.0, 40.0, 80.0))


def test_bench_times_segmentation_of_a_real_file(tmp_path, capsys, monkeypatch):
    import torch

    from calid.io.read_write import write
    from calid.models.format import ModelConfig, save_model
    from calid.models.segmenter import SliceSegmenter
    from calid.segmentation.inference import DEFAULT_MODEL

    tiny = {"channels": [4, 8], "strides": [2], "num_res_units": 0, "pixel_size": 2.0, "window": 8}
    torch.manual_seed(0)
    config = ModelConfig(DEFAULT_MODEL, "0.0.0", "segmenter", "calid-segmenter", kwargs=tiny)
    save_model(SliceSegmenter(**tiny), config, tmp_path / "models" / DEFAULT_MODEL, "# tiny test model")
    monkeypatch.setenv("CALID_MODEL_DIR", str(tmp_path / "models"))
    source = write(_tiny_cine(), tmp_path / "cine_4d.nii.gz")
    out = tmp_path / "bench.json"
    assert main(["bench", "--cases", "", "--input", str(source), "--frames", "2", "--methods", "linear",
                 "--segment", "--repeats", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    (row,) = json.loads(out.read_text())["rows"]
    assert row["case"] == "cine_4d" and row["shape_in"] == [2, 3, 32, 32] and row["shape_out"] == [2, 5, 32, 32]
    times = row["median_seconds"]
    assert times["segment"] > 0 and times["total"] == pytest.approx(times["read"] + times["reconstruct"] + times["write"], abs=1e-3)
    assert f"segment {times['segment']:.2f} s / reconstruct" in printed


def test_bench_frames_needs_a_cine(tmp_path, capsys):
    from calid.io.read_write import write

    source = write(_tiny_stack(), tmp_path / "stack.nii.gz")
    assert main(["bench", "--cases", "", "--input", str(source), "--frames", "2"]) == 2
    assert "--frames needs a cine input" in capsys.readouterr().err


def test_bench_times_calid_with_the_learned_motion_guide(tmp_path, capsys):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    source = write_small_stack(tmp_path)
    out = tmp_path / "bench.json"
    assert main(["bench", "--cases", "", "--input", str(source), "--methods", "calid", "--guide", "motion",
                 "--repeats", "1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["median_seconds"]["motion guide"] > 0 and "register" not in row["median_seconds"]
    assert "demons" not in capsys.readouterr().out  # no CPU-only registration stage to warn about


def test_bench_passes_the_guide_latents_to_calid(tmp_path, monkeypatch):
    import calid.evaluation.bench as bench

    seen = []
    real = bench._one_run

    def spy(source, target, factor, method, device, extra, *args, **kwargs):
        seen.append(dict(extra))
        return real(source, target, factor, method, device, extra, *args, **kwargs)

    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    monkeypatch.setattr(bench, "_one_run", spy)
    source = write_small_stack(tmp_path)
    assert main(["bench", "--cases", "", "--input", str(source), "--methods", "linear,calid", "--guide-latents", "warp",
                 "--repeats", "1"]) == 0
    assert {"guide_latents": "warp"}.items() <= seen[-1].items()  # calid got it
    assert seen[0] == {}  # the baseline did not


def write_small_stack(tmp_path):
    import numpy as np

    from calid.io.read_write import write
    from calid.io.volume import Volume

    rng = np.random.default_rng(5)
    return write(Volume(rng.integers(0, 1000, size=(4, 48, 48)).astype(np.int16), spacing=(1.5, 1.5, 8.0)),
                 tmp_path / "stack.nii.gz")
