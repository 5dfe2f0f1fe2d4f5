"""Argument types shared by the commands: parse-time checks with messages that say what is wanted."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, steps, sizes)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def comma_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def existing(message: str, exists: Callable[[Path], bool] = Path.exists) -> Callable[[str], Path]:
    """An argument type for a path that must already exist; ``message`` (with ``{text}``) says what to give instead."""

    def check(text: str) -> Path:
        path = Path(text)
        if not exists(path):
            raise argparse.ArgumentTypeError(message.format(text=text))
        return path

    return check
