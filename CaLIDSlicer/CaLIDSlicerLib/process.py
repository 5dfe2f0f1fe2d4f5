"""The engine as a child process: ``<python> -m calid ...`` with JSON progress lines, polled without blocking.

The model never runs inside Slicer's process: a crash, a CUDA error or a Cancel then
cannot take the application down. Output pipes are drained by two reader threads into
a queue, so :meth:`EngineProcess.poll` never blocks and Slicer can call it from a QTimer.
Cancel kills the whole process group (the engine may start workers of its own).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

import calid

#: Folder that holds the ``calid`` package: the child needs it on its path inside Slicer.
ENGINE_ROOT = Path(calid.__file__).resolve().parent.parent


def python_executable() -> str:
    """Slicer's ``PythonSlicer`` when present (it sets up Slicer's environment), else this Python."""
    return shutil.which("PythonSlicer") or sys.executable


def child_environment(device: str = "auto", base: dict | None = None) -> dict[str, str]:
    """Environment for the child only: the engine on PYTHONPATH; no GPU visible for ``cpu``."""
    env = dict(os.environ if base is None else base)
    paths = [str(ENGINE_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    return env


def parse_line(line: str) -> dict:
    """A progress event from one stdout line; anything that is not a JSON object becomes a message."""
    text = line.rstrip("\r\n")
    try:
        event = json.loads(text)
    except ValueError:
        event = None
    if isinstance(event, dict) and "event" in event:
        return event
    return {"event": "message", "text": text}


@dataclass
class ProgressState:
    """What the panel shows: the current stage and how far it is, plus the last message."""

    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    finished_stages: list[str] = field(default_factory=list)
    estimate: str = ""  # the engine's time estimate, said before its first stage
    plan: dict[str, float] = field(default_factory=dict)  # estimated seconds per stage: one overall percentage

    def update(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "estimate":
            self.estimate = str(event.get("text", ""))
            self.plan = {str(k): float(v) for k, v in (event.get("stages") or {}).items()}
        elif kind in ("start", "step"):
            self.stage = str(event.get("stage", self.stage))
            self.done = int(event.get("done", 0))
            self.total = int(event.get("total", 0))
        elif kind == "end":
            self.finished_stages.append(str(event.get("stage", "")))
            self.done = self.total
        elif kind == "message" and event.get("text"):
            self.message = str(event["text"])

    @property
    def percent(self) -> int:
        """Of the whole run when the estimate named the stages (finished ones count whole), else of this stage."""
        work = {name: seconds for name, seconds in self.plan.items() if name not in ("start", "read and write")}
        if work and self.stage in work and sum(work.values()) > 0:
            done = sum(work.get(name, 0.0) for name in set(self.finished_stages) if name != self.stage)
            done += work[self.stage] * (self.done / self.total if self.total else 0.0)
            return min(100, int(100 * done / sum(work.values())))
        return int(100 * self.done / self.total) if self.total else 0

    def text(self) -> str:
        suffix = f" ({self.estimate})" if self.estimate else ""
        if not self.stage:
            return (self.message or "starting") + suffix
        return f"{self.stage}: {self.done}/{self.total}{suffix}"


class EngineProcess:
    """One child process; start it, :meth:`poll` it until :attr:`finished`, or :meth:`cancel` it."""

    def __init__(self, arguments: Sequence[str], *, device: str = "auto", python: str | None = None) -> None:
        self.command = [python or python_executable(), "-m", "calid", *arguments]
        self.env = child_environment(device)
        self.state = ProgressState()
        self.stderr_lines: list[str] = []
        self.messages: list[str] = []  # stdout lines that were not progress events (a command's answer)
        self.cancelled = False
        self._events: queue.Queue = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._readers: list[threading.Thread] = []

    def start(self) -> None:
        kwargs = {"start_new_session": True} if os.name == "posix" else {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        # cwd: `-m` puts the working folder first on sys.path, so calid is found even where
        # a launcher (PythonSlicer) rewrites PYTHONPATH.
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            cwd=ENGINE_ROOT, env=self.env, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self._proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self._proc.stderr, "stderr"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], name: str) -> None:
        for line in stream:
            self._events.put((name, line))
        stream.close()

    def poll(self) -> list[dict]:
        """Events that arrived since the last call (never blocks)."""
        events = []
        while True:
            try:
                name, line = self._events.get_nowait()
            except queue.Empty:
                return events
            if name == "stderr":
                self.stderr_lines.append(line.rstrip("\r\n"))
                continue
            event = parse_line(line)
            if event["event"] == "message":
                self.messages.append(event["text"])
            self.state.update(event)
            events.append(event)

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def finished(self) -> bool:
        """The child has exited and both pipes are read to the end."""
        return (self.returncode is not None and not any(r.is_alive() for r in self._readers)
                and self._events.empty())

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> int:
        """Poll until the child ends (for scripts and tests; the GUI polls from a timer instead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"calid did not finish within {timeout} s")
            time.sleep(interval)
            self.poll()
        self.poll()
        return self.returncode

    def cancel(self) -> None:
        """Kill the child and everything it started; safe to call twice or after it ended."""
        self.cancelled = True
        if self._proc is None or self._proc.poll() is not None:
            return
        if os.name == "posix":
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._proc.pid)], capture_output=True)
        self._proc.wait()

    def error_text(self) -> str:
        """The engine's own error line when it printed one, else the end of its stderr."""
        errors = [line for line in self.stderr_lines if ": error: " in line]
        if errors:
            return errors[-1].split(": error: ", 1)[1]
        tail = [line for line in self.stderr_lines if line.strip()][-5:]
        return "\n".join(tail) or f"calid exited with code {self.returncode}"
