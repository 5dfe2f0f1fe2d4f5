"""Progress reporting that callers can silence or turn into JSON lines.

Three modes: ``"bar"`` (tqdm on stderr, for people), ``"json"`` (one JSON object per
line on stdout, for the Slicer module that runs the engine as a child process) and
``"none"``. Engine code only calls :meth:`Progress.stage` and :meth:`Stage.advance`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Literal

ProgressMode = Literal["bar", "json", "none"]


class Stage:
    """One named stage with a known number of steps."""

    def __init__(self, progress: "Progress", name: str, total: int) -> None:
        self.progress = progress
        self.name = name
        self.total = max(int(total), 1)
        self.done = 0
        self.started = time.perf_counter()
        self._bar = None
        if progress.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=name, file=sys.stderr, leave=False)
        self.progress._emit({"event": "start", "stage": name, "total": self.total})

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.done + steps, self.total)
        if self._bar is not None:
            self._bar.update(steps)
        self.progress._emit(
            {"event": "step", "stage": self.name, "done": self.done, "total": self.total}
        )

    def close(self) -> None:
        seconds = time.perf_counter() - self.started
        self.progress.stage_seconds[self.name] = self.progress.stage_seconds.get(self.name, 0.0) + seconds
        if self._bar is not None:
            self._bar.close()
        self.progress._emit({"event": "end", "stage": self.name, "seconds": round(seconds, 4)})

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Progress:
    """Factory of stages; also collects how long each stage took."""

    def __init__(self, mode: ProgressMode = "none", stream: IO[str] | None = None) -> None:
        if mode not in ("bar", "json", "none"):
            raise ValueError(f"progress mode must be 'bar', 'json' or 'none', not {mode!r}")
        self.mode = mode
        self.stream = stream
        self.stage_seconds: dict[str, float] = {}

    def stage(self, name: str, total: int = 1) -> Stage:
        return Stage(self, name, total)

    def message(self, text: str) -> None:
        """A human-readable note (JSON mode sends it as an event)."""
        if self.mode == "json":
            self._emit({"event": "message", "text": text})
        elif self.mode == "bar":
            print(text, file=sys.stderr)

    def _emit(self, record: dict) -> None:
        if self.mode != "json":
            return
        stream = self.stream or sys.stdout
        stream.write(json.dumps(record) + "\n")
        stream.flush()


def as_progress(progress: Progress | ProgressMode | None) -> Progress:
    """Accept a Progress, a mode name, or None (silent)."""
    if isinstance(progress, Progress):
        return progress
    return Progress(progress or "none")
