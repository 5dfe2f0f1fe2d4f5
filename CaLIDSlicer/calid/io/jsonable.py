"""Values that JSON can hold: what every report the engine writes passes through first."""

from __future__ import annotations

import math

import numpy as np


def json_safe(value):
    """``value`` with NaN as null, infinities as "inf"/"-inf" and numpy scalars as Python numbers, in dicts and lists too."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value

