"""The guide's latent by warping the neighbours' latents, not by encoding the warped image.

The registration guide morphs the two acquired neighbours of a missing slice into an image
at fraction ``a`` between them. The sampler needs that estimate as a latent; encoding every
morphed image costs as much as encoding the acquired slices again (about a third of a CPU run
at x4). The autoencoder's latent grid is the image grid shrunk by its downsampling factor, so
the same motion, averaged onto that grid, moves the neighbours' latents instead, and they are
blended with the same weights as the images: ``(1 - a) * warp(z_prev, -a d) + a * warp(z_next,
(1 - a) d)``. The latent is only where the sampler starts (noise is added at the guided start);
the image itself still comes from the full-resolution warp. ``docs/results/acdc_val_guide_latents.md``
measures both ways on validation patients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: How latents are resampled (as :func:`torch.nn.functional.grid_sample` names it): bicubic kept more texture than
#: bilinear on ACDC validation (gradient ratio 0.462 vs 0.446; docs/results/acdc_val_guide_latents.md).
LATENT_WARP_MODE = "bicubic"


def latent_displacement(motion_mm: np.ndarray, spacing_xy: tuple[float, float], downsampling: int, latent_shape: tuple[int, int]):
    """Displacement (2, h, w) in latent pixels (x then y) from a motion (Y, X, 2) in mm (x then y).

    The image is padded bottom/right (edge-replicated) to the latent grid, as the encoder pads it,
    and each latent pixel takes the mean motion of the ``downsampling`` x ``downsampling`` block it covers.
    """
    import torch
    import torch.nn.functional as F

    pixels = np.asarray(motion_mm, np.float32) / np.asarray(spacing_xy, np.float32)  # (Y, X, 2) in image pixels
    field = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]  # (1, 2, Y, X)
    pad_h = latent_shape[0] * downsampling - field.shape[-2]
    pad_w = latent_shape[1] * downsampling - field.shape[-1]
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"latent grid {latent_shape} x {downsampling} is smaller than the motion's {field.shape[-2:]}")
    if pad_h or pad_w:
        field = F.pad(field, (0, pad_w, 0, pad_h), mode="replicate")
    return F.avg_pool2d(field, downsampling)[0] / downsampling


def warp_latent(latent: "torch.Tensor", displacement: "torch.Tensor", scale: float) -> "torch.Tensor":
    """``latent`` (C, h, w) sampled at x + scale * displacement(x) (latent pixels); borders continue outwards."""
    import torch
    import torch.nn.functional as F

    height, width = latent.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    displacement = displacement.to(torch.float32)
    x = xs + scale * displacement[0]
    y = ys + scale * displacement[1]
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], dim=-1)[None].to(latent.device)
    warped = F.grid_sample(latent[None].float(), grid, mode=LATENT_WARP_MODE, padding_mode="border", align_corners=False)
    return warped[0].to(latent.dtype)


def morph_latents(prev: "torch.Tensor", next_: "torch.Tensor", motion_mm: np.ndarray, fractions: np.ndarray,
                  spacing_xy: tuple[float, float], downsampling: int) -> "torch.Tensor":
    """Latents (F, C, h, w) at each fraction between ``prev`` and ``next_`` (C, h, w), moved like the images."""
    import torch

    displacement = latent_displacement(motion_mm, spacing_xy, downsampling, tuple(prev.shape[-2:]))
    return torch.stack([(1.0 - a) * warp_latent(prev, displacement, -a) + a * warp_latent(next_, displacement, 1.0 - a)
                        for a in np.asarray(fractions, dtype=np.float64)])
