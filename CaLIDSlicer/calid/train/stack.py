"""The unit every trainer reads: one normalised stack of slices.

Its own module because both readers make it: :mod:`calid.train.data` from NIfTI (through its
cache) and :mod:`calid.train.trainset` from a compact export, and the first dispatches to the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stack:
    """One normalised stack: slices (Z, Y, X) float16 and its slice spacing in mm."""

    slices: np.ndarray
    slice_spacing: float
    source: str
