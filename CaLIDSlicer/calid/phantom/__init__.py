"""A synthetic beating heart with labels: the ground truth for tests, the demo and the bench.

:mod:`.anatomy` draws the heart as a continuous function of position and time;
:mod:`.generator` renders it at any slice spacing. The names below are the old
``calid.phantom`` module's, loaded on first use.
"""

from __future__ import annotations

from calid._lazy import lazy_getattr

_LAZY = dict.fromkeys(("SUB_SLICE_MM", "PhantomParams", "Phantom", "make_phantom", "make_phantom_pair"), "calid.phantom.generator")

__getattr__ = lazy_getattr(__name__, _LAZY)
