"""The one patient split every model and every reported number uses.

ACDC (``acdc/`` and ``acdc_cine/`` share patient ids): in each diagnostic group of 16,
the last three patients are *test* (never trained on, never tuned on) and the one before
them is *validation*; the rest are *train*. Sunnybrook studies are test only.
"""

from __future__ import annotations

import re
from typing import Literal

Split = Literal["train", "val", "test"]

ACDC_TEST = frozenset({14, 15, 16, 34, 35, 36, 54, 55, 56, 74, 75, 76, 94, 95, 96})
ACDC_VAL = frozenset({13, 33, 53, 73, 93})


def patient_number(name: str) -> int | None:
    """``patient042_ED.nii.gz`` -> 42; None for names that are not ACDC patients."""
    match = re.search(r"patient(\d{3})", name)
    return int(match.group(1)) if match else None


def split_of(name: str) -> Split:
    """Split of a case from its file or patient name."""
    number = patient_number(name)
    if number is None:
        return "test"  # anything that is not ACDC (Sunnybrook, user data) is never trained on
    if number in ACDC_TEST:
        return "test"
    if number in ACDC_VAL:
        return "val"
    return "train"
