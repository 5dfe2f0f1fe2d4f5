"""2D KL autoencoder that maps short-axis slices to compact latents and back.

The sampler only talks to it through :meth:`SliceAutoencoder.encode` and
:meth:`SliceAutoencoder.decode`; ``latent_scale`` (stored in the config) brings
the latents to roughly unit variance, which the diffusion noise schedule assumes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from calid.models.preprocess import crop_to, pad_to_multiple
from calid.models.format import register_architecture


@register_architecture("calid-vae")
class SliceAutoencoder(nn.Module):
    """MONAI ``AutoencoderKL`` (2D, one channel) with padding and an explicit latent scale."""

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 64),
        latent_channels: int = 4,
        num_res_blocks: int = 1,
        norm_num_groups: int = 16,
        latent_scale: float = 1.0,
    ) -> None:
        super().__init__()
        from monai.networks.nets import AutoencoderKL

        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError(f"channels must have at least 2 levels (one downsampling), not {channels}")
        if any(c % norm_num_groups for c in channels):
            raise ValueError(f"every entry of channels {channels} must be a multiple of norm_num_groups={norm_num_groups}")
        if latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1, not {latent_channels}")
        if not latent_scale > 0:
            raise ValueError(f"latent_scale must be > 0, not {latent_scale}")
        self.latent_channels = int(latent_channels)
        self.downsampling = 2 ** (len(channels) - 1)
        self.register_buffer("latent_scale", torch.tensor(float(latent_scale)), persistent=False)
        self.net = AutoencoderKL(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=channels,
            latent_channels=latent_channels,
            num_res_blocks=num_res_blocks,
            norm_num_groups=norm_num_groups,
            attention_levels=(False,) * len(channels),
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised images -> (N, C, ceil(H/d), ceil(W/d)) scaled latent means."""
        padded, _ = pad_to_multiple(images, self.downsampling)
        mean, _ = self.net.encode(padded)
        return mean * self.latent_scale

    def decode(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Scaled latents -> images, cropped to ``size`` (the pre-padding H, W) when given."""
        images = self.net.decode(latents / self.latent_scale)
        return crop_to(images, size) if size is not None else images

    def forward(self, images: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, unscaled posterior mean, posterior sigma).

        ``sample=False`` decodes the mean, as inference does (for decoder-only fine-tuning).
        """
        padded, size = pad_to_multiple(images, self.downsampling)
        mean, sigma = self.net.encode(padded)
        recon = self.net.decode(self.net.sampling(mean, sigma) if sample else mean)
        return crop_to(recon, size), mean, sigma
