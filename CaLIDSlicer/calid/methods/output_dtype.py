"""The output's intensity type: the input's own, so a reconstruction opens like the study it came from."""

from __future__ import annotations

import numpy as np


def output_dtype(dtype: np.dtype) -> np.dtype:
    """The input's type, or float32 for types that cannot hold intensities (bool, complex)."""
    dtype = np.dtype(dtype)
    return dtype if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) else np.dtype(np.float32)


def to_output_dtype(dense: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Map synthesised values to the input's type (round and clip for integers)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(dense), info.min, info.max).astype(dtype)
    return dense.astype(output_dtype(dtype))
