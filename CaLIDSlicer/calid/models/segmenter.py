"""2D network that labels each short-axis slice: background, RV, LV myocardium, LV blood pool.

The network works at one fixed in-plane pixel size (``pixel_size`` mm, stored in
the model config), so :mod:`calid.segmentation.inference` resamples every slice to it first:
hearts then have the same size in pixels whatever the scanner's resolution. It is
applied in ``window``-pixel sliding windows, the size of its training crops: instance
normalisation makes its output depend on the field of view it sees.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from calid.segmentation.labels import CARDIAC_STRUCTURES
from calid.models.format import register_architecture

#: Output channels: background plus one per cardiac structure (ACDC values 0..3).
N_CLASSES = 1 + len(CARDIAC_STRUCTURES)


@register_architecture("calid-segmenter")
class SliceSegmenter(nn.Module):
    """MONAI ``UNet`` (2D, one input channel, residual units, instance norm) -> class logits."""

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[int] = (2, 2, 2),
        num_res_units: int = 1,
        dropout: float = 0.0,
        pixel_size: float = 1.5,
        window: int = 128,
    ) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        channels = tuple(int(c) for c in channels)
        strides = tuple(int(s) for s in strides)
        if len(channels) < 2:
            raise ValueError(f"channels must have at least 2 levels, not {channels}")
        if len(strides) != len(channels) - 1:
            raise ValueError(f"strides must have len(channels) - 1 = {len(channels) - 1} entries, not {len(strides)}")
        if any(s < 1 for s in strides):
            raise ValueError(f"strides must be positive, not {strides}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        if not pixel_size > 0:
            raise ValueError(f"pixel_size must be > 0 mm, not {pixel_size}")
        self.pixel_size = float(pixel_size)
        self.size_multiple = 1
        for stride in strides:
            self.size_multiple *= stride
        if window < self.size_multiple or window % self.size_multiple:
            raise ValueError(f"window must be a positive multiple of {self.size_multiple} pixels, not {window}")
        self.window = int(window)
        self.net = UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=N_CLASSES,
            channels=channels,
            strides=strides,
            num_res_units=num_res_units,
            norm="instance",
            dropout=dropout,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised slices, H and W multiples of ``size_multiple`` -> (N, 4, H, W) logits."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must be shaped (N, 1, H, W), not {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"image size must be a multiple of {self.size_multiple}, not {height}x{width}; pad it first"
            )
        return self.net(images)
