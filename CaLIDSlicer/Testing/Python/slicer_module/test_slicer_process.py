"""The engine child process: JSON progress read without blocking, CPU-only env, Cancel kills the tree."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from CaLIDSlicerLib.process import ENGINE_ROOT, EngineProcess, ProgressState, child_environment, parse_line


def fake_engine(tmp_path: Path, body: str) -> str:
    """An executable standing in for PythonSlicer; it ignores the ``-m calid ...`` arguments."""
    script = tmp_path / "fake_python"
    script.write_text(f"#!{sys.executable}\nimport json, os, subprocess, sys, time\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return str(script)


def process_state(pid: int) -> str | None:
    """'Z' for a zombie, another letter while it runs, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text.rsplit(")", 1)[1].split()[0]


def test_json_lines_become_events_and_other_lines_messages():
    assert parse_line('{"event": "step", "stage": "decode", "done": 2, "total": 5}\n')["done"] == 2
    assert parse_line("Downloading model...\n") == {"event": "message", "text": "Downloading model..."}
    assert parse_line("[1, 2]") == {"event": "message", "text": "[1, 2]"}


def test_progress_state_follows_stages():
    state = ProgressState()
    assert state.text() == "starting"
    state.update({"event": "start", "stage": "sample", "total": 4})
    state.update({"event": "step", "stage": "sample", "done": 1, "total": 4})
    assert (state.percent, state.text()) == (25, "sample: 1/4")
    state.update({"event": "end", "stage": "sample", "seconds": 1.0})
    state.update({"event": "message", "text": "note"})
    assert state.percent == 100 and state.finished_stages == ["sample"] and state.message == "note"


def test_cpu_hides_gpus_in_the_child_environment_only(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = child_environment("cpu")
    assert env["CUDA_VISIBLE_DEVICES"] == "-1"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ENGINE_ROOT)
    assert "CUDA_VISIBLE_DEVICES" not in child_environment("auto", base={"PYTHONPATH": "/x"})
    assert child_environment("auto", base={"PYTHONPATH": "/x"})["PYTHONPATH"] == os.pathsep.join([str(ENGINE_ROOT), "/x"])


def test_poll_never_blocks_and_collects_everything(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    python = fake_engine(tmp_path, """
        for i in range(3):
            print(json.dumps({"event": "step", "stage": "fake", "done": i + 1, "total": 3}), flush=True)
            time.sleep(0.2)
        print("gpus:", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
        print("calid reconstruct: error: spacing must divide the slice spacing", file=sys.stderr)
        sys.exit(2)
    """)
    process = EngineProcess(["reconstruct"], device="cpu", python=python)
    process.start()
    started = time.perf_counter()
    process.poll()
    assert time.perf_counter() - started < 0.1
    assert not process.finished
    assert process.wait(timeout=20) == 2
    assert process.state.percent == 100 and process.state.stage == "fake"
    assert process.state.message == "gpus: -1"
    assert process.error_text() == "spacing must divide the slice spacing"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_error_text_falls_back_to_the_exit_code(tmp_path):
    process = EngineProcess(["reconstruct"], python=fake_engine(tmp_path, "sys.exit(3)\n"))
    process.start()
    assert process.wait(timeout=20) == 3
    assert process.error_text() == "calid exited with code 3"


@pytest.mark.skipif(os.name != "posix" or not Path("/proc").is_dir(), reason="reads /proc to see the grandchild")
def test_cancel_kills_the_whole_process_tree(tmp_path):
    python = fake_engine(tmp_path, """
        child = subprocess.Popen(["sleep", "60"])
        print(json.dumps({"event": "message", "text": str(child.pid)}), flush=True)
        child.wait()
    """)
    process = EngineProcess(["reconstruct"], python=python)
    process.start()
    deadline = time.monotonic() + 20
    while not process.state.message and time.monotonic() < deadline:
        time.sleep(0.02)
        process.poll()
    grandchild = int(process.state.message)
    assert process_state(grandchild) not in (None, "Z")
    process.cancel()
    process.wait(timeout=20)
    assert process.cancelled and process.returncode != 0
    deadline = time.monotonic() + 5
    while process_state(grandchild) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process_state(grandchild) in (None, "Z")
    process.cancel()  # a second cancel is harmless
