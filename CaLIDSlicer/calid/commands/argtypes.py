"""Argument types shared by the commands: parse-time checks with messages that say what is wanted."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, steps, sizes)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def upsampling_factor(text: str) -> int:
    """``--factor``: a whole number >= 1; 0 and negatives are refused here, never replaced by a default."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (e.g. 2 or 4), not {text!r}")
    return value


def comma_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]
