"""CaLID engine: dense cardiac MR volumes from sparse short-axis slices.

The public API is small: :class:`Volume`, :func:`read`, :func:`write`,
:func:`reconstruct` and :func:`segment`. Heavy modules load lazily
so ``import calid`` and ``calid --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from calid import _moved

__version__ = "0.1.0"

_LAZY = {
    "Volume": "calid.io.volume",
    "read": "calid.io.read_write",
    "write": "calid.io.read_write",
    "reconstruct": "calid.methods.reconstruction",
    "ReconstructionResult": "calid.methods.reconstruction",
    "make_phantom": "calid.phantom.generator",
    "segment": "calid.segmentation.inference",
}

__all__ = ["__version__", *_LAZY]

_moved.install()  # old module paths (calid.reconstruction, calid.weights, ...) keep working for one release


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'calid' has no attribute {name!r}")
