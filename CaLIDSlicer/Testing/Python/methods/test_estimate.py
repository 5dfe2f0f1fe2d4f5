"""The time estimate before a run: its cost model, its calibration, and the CLI printing it before any work."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from calid.methods.estimate import (
    CPU_COSTS,
    Workload,
    estimate,
    fit_costs,
    format_duration,
)
from calid.evaluation.estimate_calibration import bench_calibration_rows
from calid.progress import Progress

REPO = Path(__file__).resolve().parents[4]
ENGINE = REPO / "CaLIDSlicer"
CALIBRATION = REPO / "docs" / "results" / "estimate_cpu.json"
CINE = Workload(frames=10, slices=10, height=256, width=216, factor=2, method="calid", mode="2dt", segment=True)
FIXED = ("start",)


def work_seconds(est) -> float:
    return sum(seconds for stage, seconds in est.stages.items() if stage not in FIXED)


def test_more_frames_take_proportionally_more_time():
    one, two = estimate(CINE), estimate(replace(CINE, frames=20))
    assert work_seconds(two) == pytest.approx(2 * work_seconds(one), rel=1e-9)
    assert two.stages["start"] == one.stages["start"]


def test_pixels_steps_and_samples_scale_their_stages():
    base = estimate(CINE)
    wide = estimate(replace(CINE, width=432))
    assert work_seconds(wide) == pytest.approx(2 * work_seconds(base), rel=1e-9)
    steps = estimate(replace(CINE, steps=8))
    assert steps.stages["sample"] == pytest.approx(4 * base.stages["sample"])
    assert steps.stages["decode"] == pytest.approx(base.stages["decode"])
    samples = estimate(replace(CINE, samples=3))
    assert samples.stages["decode"] == pytest.approx(3 * base.stages["decode"])
    assert "register" not in estimate(replace(CINE, guide="none")).stages
    assert "segment" not in estimate(replace(CINE, segment=False)).stages


def test_cuda_without_measurements_says_so_instead_of_guessing():
    est = estimate(CINE, "cuda")
    assert not est.measured and est.seconds is None
    assert "not measured yet" in est.text() and "CUDA" in est.text()
    assert est.as_event()["seconds"] is None


def test_text_names_duration_and_device():
    text = estimate(CINE, busy=1.0).text()
    assert text.startswith("about ") and "on this CPU" in text and "10 frames x 10 slices of 256 x 216" in text
    assert "not timed yet" in estimate(CINE).text()  # no probe: it says whose CPU the numbers are from
    assert "x3.0" in estimate(CINE, busy=3.0).text()
    assert format_duration(7.2) == "about 7 s" and format_duration(367) == "about 6 min"
    assert format_duration(2 * 3600) == "about 2.0 h"


def test_a_busier_cpu_scales_every_stage_alike():
    base, busy = estimate(CINE), estimate(CINE, busy=2.5)
    assert busy.stages == pytest.approx({stage: 2.5 * seconds for stage, seconds in base.stages.items()})


def test_speed_probe_times_this_cpu():
    from calid.methods.estimate import PROBE_RANGE, speed_probe

    factor = speed_probe()
    if factor is None:
        pytest.skip("no CaLID model installed: nothing to probe with")
    assert PROBE_RANGE[0] <= factor <= PROBE_RANGE[1]


def test_segment_only_workload_counts_every_slice_once_per_mirror_image():
    from calid.methods.estimate import segment_workload

    one = estimate(segment_workload((20, 12, 256, 256)), "cpu")
    four = estimate(segment_workload((20, 12, 256, 256), flips=4), "cpu")
    assert set(one.stages) == {"segment", "read and write", "start"}  # no reconstruction stage
    assert one.stages["segment"] == pytest.approx(20 * 12 * CPU_COSTS["segment"])
    assert four.stages["segment"] == pytest.approx(4 * one.stages["segment"])
    assert "segmentation, 20 frames x 12 slices of 256 x 256" in one.text()
    assert "4 mirror images" in four.text()


def test_shipped_cpu_costs_are_the_fit_of_the_recorded_measurements():
    if not CALIBRATION.is_file():
        pytest.skip("docs/results is not part of this installation")
    record = json.loads(CALIBRATION.read_text())
    rows = list(record["rows"])
    for name in record["bench_files"]:
        rows += bench_calibration_rows(json.loads((CALIBRATION.parent / name).read_text()))
    fitted = fit_costs(rows)
    assert set(fitted) == set(CPU_COSTS)
    for key, value in fitted.items():
        assert CPU_COSTS[key] == pytest.approx(value, rel=0.02, abs=1e-4), key


def test_fit_recovers_known_costs():
    truth = {**CPU_COSTS, "encode": 0.2, "decode": 0.05, "register_gap": 0.3, "register_slice": 0.01}
    works = [CINE, replace(CINE, frames=1, slices=10, factor=4, mode="3d", segment=False)]
    rows = [{"workload": w.__dict__, "seconds": estimate(w, costs=truth).stages} for w in works]
    fitted = fit_costs(rows)
    for key in ("encode", "decode", "register_gap", "register_slice"):
        assert fitted[key] == pytest.approx(truth[key], rel=1e-6)


def test_one_overall_bar_on_a_terminal_with_an_eta():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress("bar", stream=stream, plan={"encode": 1.0, "sample": 2.0, "decode": 1.0})
    for name in ("encode", "sample", "decode"):
        with progress.stage(name, 4) as stage:
            for _ in range(4):
                stage.advance()
    display = progress.display()
    assert display.position == pytest.approx(display.total)
    progress.close()
    text = stream.getvalue()
    assert "ETA" in text and "100%" in text
    shown = [int(part.split("%")[0].split(":")[-1]) for part in text.split("\r") if "%|" in part]
    assert shown == sorted(shown), "one bar for the whole run: it never starts again at 0 for a new stage"


def test_redirected_progress_is_plain_lines(tmp_path):
    stream = io.StringIO()  # not a terminal
    progress = Progress("bar", stream=stream, plan={"encode": 1.0, "decode": 3.0})
    for name in ("encode", "decode"):
        with progress.stage(name, 2) as stage:
            stage.advance(2)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b[" not in text
    assert text.splitlines()[0].startswith("encode: done in") and "25% of the estimated work" in text


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real ``calid`` with stdout and stderr to pipes (not a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(ENGINE)}
    return subprocess.run([sys.executable, "-m", "calid", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def small_stack(tmp_path, oblique_stack):
    from calid.io.read_write import write

    return write(oblique_stack, tmp_path / "sax.nii.gz")


def assert_plain(text: str) -> None:
    assert "\x1b[" not in text, "terminal escape codes in redirected output"
    assert "\r" not in text, "carriage-return redraws in redirected output"


@pytest.mark.parametrize("method", ["linear", "calid"])
def test_cli_prints_the_estimate_before_any_work_and_no_escape_codes(tmp_path, small_stack, method):
    done = run_cli("reconstruct", str(small_stack), "-o", str(tmp_path / "dense.nii.gz"), "--method", method,
                   "--device", "cpu", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_plain(done.stdout + done.stderr)
    lines = done.stderr.splitlines()
    first_stage = "interpolate (linear)" if method == "linear" else "encode"
    assert lines[0].startswith("estimate: about ")
    assert ("on this CPU" in lines[0]) == (method == "calid")  # slow methods time this CPU first
    assert any(line.startswith(f"{first_stage}: done in") for line in lines[1:])


def test_estimate_only_does_no_work_and_json_has_the_estimate_first(tmp_path, small_stack):
    output = tmp_path / "dense.nii.gz"
    done = run_cli("reconstruct", str(small_stack), "-o", str(output), "--method", "linear", "--estimate-only",
                   "--progress", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [event["event"] for event in events] == ["estimate"]
    assert events[0]["seconds"] > 0 and events[0]["text"].startswith("about ")
    assert not output.exists()
    full = run_cli("reconstruct", str(small_stack), "-o", str(output), "--method", "linear", "--progress", "json",
                   cwd=tmp_path)
    kinds = [json.loads(line)["event"] for line in full.stdout.splitlines()]
    assert kinds[0] == "estimate" and kinds.index("start") > 0


def test_cohort_prints_its_estimate_before_the_first_case(tmp_path, oblique_stack):
    from calid.io.read_write import write

    folder = tmp_path / "studies"
    folder.mkdir()
    for name in ("a", "b"):
        write(oblique_stack, folder / f"{name}.nii.gz")
    done = run_cli("reconstruct", str(folder), "--cohort", "-o", str(tmp_path / "out"), "--method", "linear",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_plain(done.stdout + done.stderr)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("estimate: about ") and "for 2 case(s)" in lines[0]
    assert sum(line.strip().startswith("done") for line in lines[1:]) == 2  # both cases ran after it
