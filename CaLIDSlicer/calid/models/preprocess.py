"""Intensity normalisation and padding shared by training and inference.

Scanner intensities have no absolute meaning, so every stack is divided by the 99.5th
percentile of its *acquired* slices (robust to a few bright voxels, and computable at
inference where only the sparse input exists) and clipped to a fixed range the
networks were trained on. :func:`denormalise` maps network outputs back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: Percentile of the sparse input that maps to 1.0.
SCALE_PERCENTILE = 99.5
#: Normalised intensities are clipped to [0, CLIP_MAX]: bright fat/flow rarely exceeds 2x p99.5.
CLIP_MAX = 2.0


#: Above this many voxels the percentile is taken on an even stride of them (memory stays bounded).
SCALE_SAMPLE_VOXELS = 1 << 24


def intensity_scale(array: np.ndarray) -> float:
    """The value that maps to 1.0: the 99.5th percentile, or the maximum for near-empty input."""
    flat = np.asarray(array).reshape(-1)
    values = flat[:: -(-flat.size // SCALE_SAMPLE_VOXELS)].astype(np.float32) if flat.size else flat.astype(np.float32)
    if values.size == 0:
        raise ValueError("cannot normalise an empty array")
    scale = float(np.percentile(values, SCALE_PERCENTILE))
    if not np.isfinite(scale) or scale <= 0:
        scale = float(np.max(np.abs(values)))
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def normalise(array: np.ndarray, scale: float) -> np.ndarray:
    """float32 in [0, CLIP_MAX]; negative values (e.g. int16 padding) become 0."""
    return np.clip(np.asarray(array, dtype=np.float32) / np.float32(scale), 0.0, CLIP_MAX)


def denormalise(array: np.ndarray, scale: float) -> np.ndarray:
    """Back to the input's intensity units (float32)."""
    return np.clip(np.asarray(array, dtype=np.float32), 0.0, CLIP_MAX) * np.float32(scale)


def pad_to_multiple(images: "torch.Tensor", multiple: int) -> tuple["torch.Tensor", tuple[int, int]]:
    """Pad the last two axes (bottom/right, edge-replicated) up to a multiple; return the old size.

    Replicating the edge rather than zero-padding avoids an artificial border that the
    autoencoder would spend latent capacity on.
    """
    import torch.nn.functional as F

    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, not {multiple}")
    height, width = images.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        mode = "replicate" if height > 1 and width > 1 else "constant"
        images = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
    return images, (height, width)


def crop_to(images: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    """Undo :func:`pad_to_multiple`."""
    return images[..., : size[0], : size[1]]
