"""Progress reporting that callers can silence or turn into JSON lines.

Three modes: ``"bar"`` (for people, on stderr), ``"json"`` (one JSON object per
line on stdout, for the Slicer module that runs the engine as a child process) and
``"none"``. Engine code only calls :meth:`Progress.stage` and :meth:`Stage.advance`.
In bar mode the stages feed ONE overall display (:mod:`calid.progress_display`): a tqdm
bar with an ETA on a terminal, plain lines when stderr is redirected.
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
        self._display = progress.display()
        if self._display is not None:
            self._display.stage_started(name, self.total)
        self.progress._emit({"event": "start", "stage": name, "total": self.total})

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.done + steps, self.total)
        if self._display is not None:
            self._display.advanced(self.name, self.total, steps)
        self.progress._emit(
            {"event": "step", "stage": self.name, "done": self.done, "total": self.total}
        )

    def close(self) -> None:
        seconds = time.perf_counter() - self.started
        self.progress.stage_seconds[self.name] = self.progress.stage_seconds.get(self.name, 0.0) + seconds
        if self._display is not None:
            self._display.stage_closed(self.name, seconds)
        self.progress._emit({"event": "end", "stage": self.name, "seconds": round(seconds, 4)})

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Progress:
    """Factory of stages; also collects how long each stage took."""

    def __init__(self, mode: ProgressMode = "none", stream: IO[str] | None = None,
                 plan: dict[str, float] | None = None, repeats: dict[str, int] | None = None) -> None:
        """``plan``: estimated seconds per stage name (the overall bar's weights); ``repeats``: how many
        times a stage name runs (rounds), so each run of it moves the bar by its share."""
        if mode not in ("bar", "json", "none"):
            raise ValueError(f"progress mode must be 'bar', 'json' or 'none', not {mode!r}")
        self.mode = mode
        self.stream = stream
        self.stage_seconds: dict[str, float] = {}
        self.plan = dict(plan or {})
        self.repeats = dict(repeats or {})
        self._display = None

    def display(self):
        """The one overall display of bar mode (made at the first stage), else None."""
        if self.mode == "bar" and self._display is None:
            from calid.progress_display import OverallDisplay

            self._display = OverallDisplay(self.plan, self.repeats, self.stream or sys.stderr)
        return self._display

    def estimate(self, event: dict) -> None:
        """Say the run's time estimate before the work: a JSON event, or its text on stderr."""
        if self.mode == "json":
            self._emit(event)
        else:
            print(f"estimate: {event['text']}", file=self.stream or sys.stderr, flush=True)

    def close(self) -> None:
        """End the overall bar (bar mode); safe to call twice."""
        if self._display is not None:
            self._display.close()

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
