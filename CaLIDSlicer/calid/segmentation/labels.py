"""Cardiac label values, names and colours (ACDC convention), shared by every module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Structure:
    value: int
    name: str
    color: tuple[float, float, float]  # RGB in [0, 1]


#: ACDC label values: 1 RV cavity, 2 LV myocardium, 3 LV cavity.
CARDIAC_STRUCTURES: tuple[Structure, ...] = (
    Structure(1, "RV blood pool", (0.345, 0.529, 0.788)),
    Structure(2, "LV myocardium", (0.800, 0.412, 0.294)),
    Structure(3, "LV blood pool", (0.863, 0.263, 0.247)),
)

RV, MYO, LV = 1, 2, 3


def structure(value: int) -> Structure:
    for item in CARDIAC_STRUCTURES:
        if item.value == value:
            return item
    raise ValueError(f"label value must be one of {[s.value for s in CARDIAC_STRUCTURES]}, not {value}")
