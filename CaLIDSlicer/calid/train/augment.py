"""Random crops around the heart and label-free augmentations for slice batches."""

from __future__ import annotations

import numpy as np
import torch


def centred_crop_box(height: int, width: int, crop: int, generator: torch.Generator) -> tuple[int, int]:
    """Top-left corner of a crop that stays near the image centre, where the heart is."""

    def corner(size: int) -> int:
        if size <= crop:
            return 0
        middle, jitter = (size - crop) // 2, max(1, size // 8)
        low, high = max(0, middle - jitter), min(size - crop, middle + jitter)
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    return corner(height), corner(width)


def crop_slices(slices: np.ndarray, crop: int, generator: torch.Generator) -> torch.Tensor:
    """(..., H, W) -> (..., crop, crop) float32 tensor; smaller images are zero-padded."""
    height, width = slices.shape[-2:]
    top, left = centred_crop_box(height, width, crop, generator)
    patch = torch.from_numpy(np.ascontiguousarray(slices[..., top : top + crop, left : left + crop], dtype=np.float32))
    pad_h, pad_w = crop - patch.shape[-2], crop - patch.shape[-1]
    if pad_h or pad_w:
        patch = torch.nn.functional.pad(patch, (0, pad_w, 0, pad_h))
    return patch


def dihedral(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of the 8 flips/90-degree rotations, the same for all leading axes (a stack stays a stack)."""
    code = int(torch.randint(0, 8, (1,), generator=generator))
    if code & 4:
        images = images.flip(-1)
    return torch.rot90(images, code % 4, dims=(-2, -1))


def intensity_jitter(images: torch.Tensor, generator: torch.Generator, spread: float = 0.1) -> torch.Tensor:
    """Scale by a random factor in [1 - spread, 1 + spread] (normalisation is never exact)."""
    factor = 1.0 + spread * (2 * float(torch.rand((), generator=generator)) - 1)
    return images * factor
