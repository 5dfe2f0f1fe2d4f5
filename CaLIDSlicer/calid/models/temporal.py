"""2D+T latent denoiser: the 3D slice denoiser plus mixing along the cardiac cycle.

A missing slice is generated for every frame of a cine at once. After every block of
the U-Net a residual temporal convolution (kernel along time only, circular padding
because the heartbeat repeats) lets each frame see its neighbours in time, so the
synthesised slice moves smoothly instead of flickering. The mixing layers start at
zero: before training this model is exactly the per-frame 3D denoiser, whose weights
it is fine-tuned from.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from calid.models.denoiser import SliceDenoiser
from calid.models.format import register_architecture


class TemporalMix(nn.Module):
    """h + m - mean_t(m), m = conv_t(silu(conv_t(silu(norm(h))))) over (clip, C, T, y, x).

    The last convolution starts at zero. Removing the mean over the cycle means the layer
    only moves features between frames: where nothing moves (static tissue, the zero
    background outside a scanner's field of view) the 3D model's result is kept exactly,
    so the layer cannot add an intensity offset the 3D model did not make.
    """

    def __init__(self, channels: int, norm_num_groups: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"temporal kernel must be a positive odd number, not {kernel}")
        conv = {"kernel_size": (kernel, 1, 1), "padding": (kernel // 2, 0, 0), "padding_mode": "circular"}
        self.norm = nn.GroupNorm(norm_num_groups, channels)
        self.first = nn.Conv3d(channels, channels, **conv)
        self.second = nn.Conv3d(channels, channels, **conv)
        nn.init.zeros_(self.second.weight)
        nn.init.zeros_(self.second.bias)

    def forward(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        count, channels, height, width = h.shape
        clips = h.reshape(count // frames, frames, channels, height, width).transpose(1, 2)
        mixed = self.second(nn.functional.silu(self.first(nn.functional.silu(self.norm(clips)))))
        mixed = mixed - mixed.mean(dim=2, keepdim=True)
        return h + mixed.transpose(1, 2).reshape(count, channels, height, width)


@register_architecture("calid-denoiser-2dt")
class TemporalSliceDenoiser(SliceDenoiser):
    """SliceDenoiser whose U-Net mixes features across the frames of each clip."""

    def __init__(self, *args, temporal_kernel: int = 3, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        groups = self.unet.out[0].num_groups
        self.temporal_kernel = int(temporal_kernel)
        self.mixers = nn.ModuleList(TemporalMix(c, groups, self.temporal_kernel) for c in self.unet.level_channels())

    def temporal_mix(self, frames: int | None, count: int) -> Callable[[int, torch.Tensor], torch.Tensor] | None:
        if frames is None:
            raise ValueError("the 2D+T denoiser needs frames= (how many cine frames each clip holds)")
        if frames < 1 or count % frames:
            raise ValueError(f"a batch of {count} latents does not split into clips of {frames} frames")
        return lambda level, h: self.mixers[level](h, frames)

    def load_slice_weights(self, slice_model: SliceDenoiser) -> None:
        """Start from a trained 3D denoiser (same shape); the mixers keep their zero start."""
        try:
            missing, unexpected = self.load_state_dict(slice_model.state_dict(), strict=False)
        except RuntimeError as err:  # size mismatches
            raise ValueError(f"the 3D denoiser does not match this 2D+T shape: {err}") from err
        foreign = [k for k in missing if not k.startswith("mixers.")] + list(unexpected)
        if foreign:
            raise ValueError(f"the 3D denoiser does not match this 2D+T shape: {foreign[:5]}")
