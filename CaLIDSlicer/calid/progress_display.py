"""One overall progress display for a whole run, fed by :class:`calid.progress.Progress` stages.

With a plan (estimated seconds per stage) the bar's length is the estimated work and each
stage moves it by its share, so the ETA covers the whole run, not the current stage.
Without a plan it counts the current stage's steps. On a terminal it is one tqdm bar;
when stderr is redirected (a log file, a pipe) it writes plain lines instead — no carriage
returns, no escape codes — at each stage's end and at most every :data:`LINE_INTERVAL_S`.
"""

from __future__ import annotations

import time
from typing import IO

#: Seconds between two plain progress lines within one stage (redirected output).
LINE_INTERVAL_S = 30.0
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, ETA {remaining}"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class OverallDisplay:
    """Receives stage events; shows one bar (terminal) or plain lines (redirected)."""

    def __init__(self, plan: dict[str, float], repeats: dict[str, int], stream: IO[str]) -> None:
        self.plan = {name: max(float(seconds), 0.0) for name, seconds in plan.items()}
        self.repeats = repeats
        self.stream = stream
        self.total = sum(self.plan.values())
        self.position = 0.0  # estimated seconds of work done
        self.started = time.perf_counter()
        self._stage_start = 0.0  # position when the current stage began
        self._last_line = self.started
        self._open: list[list] = []  # [name, total, done] of the stages running, outermost first (nested stages)
        self._bar = None
        if _is_terminal(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=round(self.total, 3) if self.total else None, file=stream, bar_format=BAR_FORMAT
                             if self.total else None, leave=False, dynamic_ncols=True)

    def _weight(self, name: str) -> float:
        """Estimated seconds of one run of stage ``name`` (0 when the plan does not list it)."""
        return self.plan.get(name, 0.0) / max(1, self.repeats.get(name, 1))

    def _move(self, amount: float) -> None:
        amount = min(amount, self.total - self.position) if self.total else amount
        if amount <= 0:
            return
        self.position += amount
        if self._bar is not None:
            self._bar.update(round(amount, 3))

    def _show_innermost(self) -> None:
        """No plan: the bar counts the steps of the innermost running stage."""
        if self._bar is None or self.total or not self._open:
            return
        name, total, done = self._open[-1]
        self._bar.reset(total=total)
        self._bar.update(done)
        self._bar.set_description_str(name)

    def stage_started(self, name: str, total: int) -> None:
        self._stage_start = self.position
        self._open.append([name, total, 0])
        self._show_innermost()
        if self._bar is not None and self.total:
            self._bar.set_description_str(name, refresh=False)

    def advanced(self, name: str, total: int, steps: int) -> None:
        if self._open:
            self._open[-1][2] += steps
        if self.total:
            self._move(self._weight(name) * steps / max(total, 1))
        elif self._bar is not None:
            self._bar.update(steps)
        now = time.perf_counter()
        if self._bar is None and now - self._last_line >= LINE_INTERVAL_S:
            self._line(f"{name}: running")

    def stage_closed(self, name: str, seconds: float) -> None:
        if self._open:
            self._open.pop()
            self._show_innermost()
        if self.total:  # the stage's whole share, whatever its steps said
            self._move(self._stage_start + self._weight(name) - self.position)
        if self._bar is None:
            self._line(f"{name}: done in {_duration(seconds)}")
        else:
            self._bar.refresh()  # a stage's end is always drawn, however short it was

    def eta_seconds(self) -> float | None:
        """Seconds left, from the speed so far against the estimate; None before any estimated work is done."""
        if not self.total or self.position <= 0:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed * (self.total - self.position) / self.position

    def _line(self, text: str) -> None:
        if self.total:
            eta = self.eta_seconds()
            text += f" ({100 * self.position / self.total:.0f}% of the estimated work"
            text += f", about {_duration(eta)} left)" if eta is not None and self.position < self.total else ")"
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last_line = time.perf_counter()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
