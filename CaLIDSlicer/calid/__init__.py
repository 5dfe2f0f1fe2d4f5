"""CaLID engine: dense cardiac MR volumes from sparse short-axis slices.

The public API is small: :class:`Volume`, :func:`read`, :func:`write`,
:func:`reconstruct` and :func:`segment`. Heavy modules load lazily
so ``import calid`` and ``calid --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Volume": "calid.volume",
    "read": "calid.io",
    "write": "calid.io",
    "reconstruct": "calid.reconstruction",
    "ReconstructionResult": "calid.reconstruction",
    "make_phantom": "calid.phantom",
    "segment": "calid.segmentation",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'calid' has no attribute {name!r}")
