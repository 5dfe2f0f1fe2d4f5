"""Learned motion guide: morph two acquired slices into the slice a fraction ``a`` between them.

Drop-in for :func:`calid.methods.registration.morph_between` (SimpleITK demons), built from MONAI's
registration parts. One pass per *pair* of acquired slices predicts bidirectional flows
``F01`` / ``F10`` at quarter resolution (a shared strided stem, then a ``BasicUNet``); the
flows to each target are derived from ``a`` assuming straight-line motion (as in Super
SloMo) and corrected, per target, by a tiny second ``BasicUNet`` that also gives a
visibility mask. The output is ``m * warp(prev, f0) + (1 - m) * warp(next, f1)`` at full
resolution: every pixel is an acquired pixel moved, so texture is that of the real slices,
without decoder blur. Per-pair flows are what make it cheap at x4 (three targets per pair):
a pair's flows and images are shared by all its targets in one call, the CPU convolutions run
in NHWC layout, and the full-resolution warps go a few pairs at a time (cache-sized).

Inputs are intensity-normalised here (99.5th percentile of the given slices), so callers
may pass raw or normalised slices; the output has the input's units.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calid.errors import InputError
from calid.models.format import register_architecture

#: Flows are predicted at 1 / DOWNSCALE of the input size by default (8 is the cheaper option).
DOWNSCALE = 4
#: BasicUNet halves its input four times.
UNET_MULTIPLE = 16
#: Full-resolution targets warped per step of :meth:`MotionNet.targets` (cache-sized chunks on a CPU).
FULL_RES_TARGETS = 9


def _unet(in_channels: int, out_channels: int, width: int) -> nn.Module:
    from monai.networks.nets import BasicUNet

    w = int(width)
    # no normalisation layer: instance norm would make flows depend on the field of view
    # (128-px training crops vs whole 256-px slices) and fails on the 1 x 1 bottom of small inputs
    return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                     features=(w, w, 2 * w, 4 * w, 8 * w, w), norm=None)


def target_flows(f01: torch.Tensor, f10: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows from the target at fraction ``a`` to prev and to next, from the pair's two flows.

    Straight-line motion through the target (Super SloMo, Jiang et al. 2018):
    ``f_t0 = -(1 - a) a F01 + a^2 F10``, ``f_t1 = (1 - a)^2 F01 - a (1 - a) F10``.
    ``a`` broadcasts as (B, 1, 1, 1).
    """
    f_t0 = -(1 - a) * a * f01 + a * a * f10
    f_t1 = (1 - a) * (1 - a) * f01 - a * (1 - a) * f10
    return f_t0, f_t1


def warp(image: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
    """``image`` (B, C, H, W) sampled at x + ddf(x), ddf (B, 2, H, W) in pixels (y, x); border values outside.

    The same resampling as MONAI's ``Warp(mode="bilinear", padding_mode="border")`` (tested
    against it), without its generic index shuffles, which took most of the CPU time at x4.
    """
    height, width = image.shape[-2:]
    y = torch.linspace(-1.0, 1.0, height, device=image.device, dtype=image.dtype).view(1, height, 1)
    x = torch.linspace(-1.0, 1.0, width, device=image.device, dtype=image.dtype).view(1, 1, width)
    grid = torch.stack([x + ddf[:, 1] * (2.0 / max(width - 1, 1)), y + ddf[:, 0] * (2.0 / max(height - 1, 1))], -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _channels_last(images: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout: the CPU convolutions of these narrow networks run about a third faster."""
    return images.contiguous(memory_format=torch.channels_last)


def grid_offsets(flow: torch.Tensor, size: Sequence[int], downscale: int) -> torch.Tensor:
    """Flows (B, 2, h, w) in pixels of the 1 / ``downscale`` grid, (y, x), as ``grid_sample``
    offsets (x, y) of the full ``size`` (align_corners=True units): scaled before upsampling,
    which is linear, so the full-resolution field needs no arithmetic of its own."""
    height, width = size
    scale = flow.new_tensor([2.0 * downscale / max(width - 1, 1), 2.0 * downscale / max(height - 1, 1)])
    return flow.flip(1) * scale.view(1, 2, 1, 1)


def identity_grid(size: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H, W, 2) sampling grid of the unmoved image (x, y in [-1, 1], align_corners=True)."""
    height, width = size
    y = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    x = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(x, y, indexing="xy"), -1)


def warp_per_pair(image: torch.Tensor, grid: torch.Tensor, per_pair: int) -> torch.Tensor:
    """``image`` (P, C, H, W) sampled at ``grid`` (P * F, H, W, 2), F targets per pair, pair-major.

    The F grids of a pair are stacked along the height and sampled in one call, so no image is
    repeated per target; border values outside, as :func:`warp`.
    """
    pairs, channels, height, width = image.shape
    stacked = grid.reshape(pairs, per_pair * height, width, 2)
    out = F.grid_sample(image, stacked, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(pairs, channels, per_pair, height, width).transpose(1, 2).reshape(-1, channels, height, width)


@register_architecture("calid-motion")
class MotionNet(nn.Module):
    """Pair flows + per-target correction and visibility mask; see the module docstring."""

    def __init__(self, stem_channels: int = 8, flow_width: int = 16, refine_width: int = 8,
                 downscale: int = DOWNSCALE) -> None:
        super().__init__()
        from monai.networks.blocks import Convolution

        if min(stem_channels, flow_width, refine_width) < 1:
            raise ValueError("stem_channels, flow_width and refine_width must be >= 1")
        if downscale not in (4, 8):
            raise ValueError(f"downscale must be 4 or 8 (flows at 1/4 or 1/8 of the slice size), not {downscale}")
        s = int(stem_channels)
        self.downscale = int(downscale)
        act = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True})  # in place, as inside BasicUNet
        # shared (siamese) features of each slice at 1 / downscale resolution
        layers = [Convolution(2, 1, s, strides=2, act=act, norm=None), Convolution(2, s, 2 * s, strides=2, act=act, norm=None)]
        if self.downscale == 8:
            layers.append(Convolution(2, 2 * s, 2 * s, strides=2, act=act, norm=None))
        self.stem = nn.Sequential(*layers)
        self.flow_net = _unet(4 * s + 2, 4, flow_width)  # -> F01 (2), F10 (2), in quarter-res pixels (y, x)
        self.refine_net = _unet(9, 5, refine_width)  # -> d_f0 (2), d_f1 (2), visibility logit (1)
        self.warp = warp
        self.config = {"stem_channels": s, "flow_width": int(flow_width), "refine_width": int(refine_width)}
        if self.downscale != DOWNSCALE:
            self.config["downscale"] = self.downscale

    @property
    def size_multiple(self) -> int:
        return self.downscale * UNET_MULTIPLE

    def pair_flows(self, prev: torch.Tensor, next_: torch.Tensor) -> torch.Tensor:
        """(P, 4, H/d, W/d): F01 then F10 in pixels of that grid (d = downscale); prev(x) ~ next(x + F01(x))."""
        small = torch.cat([F.avg_pool2d(prev, self.downscale), F.avg_pool2d(next_, self.downscale)], 1)
        features = self.stem(_channels_last(torch.cat([prev, next_], 0)))
        features = torch.cat(features.chunk(2, 0), 1)
        return self.flow_net(_channels_last(torch.cat([features, small], 1)))

    def targets(self, prev: torch.Tensor, next_: torch.Tensor, flows: torch.Tensor, a: torch.Tensor) -> dict:
        """Full-resolution targets ``image`` (P * F, 1, H, W), pair-major, and the low-resolution ``mask``.

        ``prev``, ``next_`` (P, 1, H, W) and ``flows`` (P, 4, h, w) are per pair; ``a`` is (P,)
        for one target per pair or (P, F) for F targets per pair: the pair's flows and
        images are shared by its targets, never copied at full resolution.
        """
        per_pair = a.shape[1] if a.ndim == 2 else 1
        a4 = a.reshape(-1, 1, 1, 1).to(prev.dtype)

        def each(t: torch.Tensor) -> torch.Tensor:  # per pair -> per target (low resolution only)
            return t.repeat_interleave(per_pair, 0) if per_pair > 1 else t

        f_t0, f_t1 = target_flows(each(flows[:, :2]), each(flows[:, 2:]), a4)
        small_prev, small_next = each(F.avg_pool2d(prev, self.downscale)), each(F.avg_pool2d(next_, self.downscale))
        seen = torch.cat([small_prev, small_next, self.warp(small_prev, f_t0), self.warp(small_next, f_t1),
                          f_t0, f_t1, a4.expand_as(small_prev)], 1)
        out = self.refine_net(_channels_last(seen))
        # corrections vanish at the ends, so a = 0 gives prev and a = 1 gives next exactly
        f_t0 = f_t0 + a4 * out[:, 0:2]
        f_t1 = f_t1 + (1 - a4) * out[:, 2:4]
        visible = torch.sigmoid(out[:, 4:5])
        weight_prev = (1 - a4) * visible
        mask = weight_prev / (weight_prev + a4 * (1 - visible)).clamp_min(1e-6)
        # sampling offsets and mask upsampled together, a few pairs at a time: the full-size
        # fields of a handful of targets stay in the CPU cache through upsampling, warping and blend
        size = prev.shape[-2:]
        low = torch.cat([grid_offsets(f_t0, size, self.downscale), grid_offsets(f_t1, size, self.downscale), mask], 1)
        base = identity_grid(size, prev.device, prev.dtype)
        step = max(1, FULL_RES_TARGETS // per_pair)
        images = []
        for start in range(0, prev.shape[0], step):
            full = F.interpolate(low[start * per_pair : (start + step) * per_pair], size=size, mode="bilinear",
                                 align_corners=False)  # a = 0 / 1 keep mask 1 / 0 and zero offsets exactly
            warped_prev = warp_per_pair(prev[start : start + step], base + full[:, 0:2].permute(0, 2, 3, 1), per_pair)
            warped_next = warp_per_pair(next_[start : start + step], base + full[:, 2:4].permute(0, 2, 3, 1), per_pair)
            images.append(torch.lerp(warped_next, warped_prev, full[:, 4:5]))  # mask * prev + (1 - mask) * next
        return {"image": torch.cat(images) if len(images) > 1 else images[0], "mask": mask}

    def forward(self, prev: torch.Tensor, next_: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Targets (B, 1, H, W) for one fraction per pair; H and W multiples of :attr:`size_multiple`."""
        return self.targets(prev, next_, self.pair_flows(prev, next_), a)["image"]


def from_pretrained(directory: str | Path, device: str | torch.device = "cpu") -> MotionNet:
    """A trained motion guide from a model folder (config.json + model.safetensors), in eval mode."""
    from calid.models.identity import load_identified

    model, config = load_identified(directory, device)  # so reports can name the weights file
    if not isinstance(model, MotionNet):
        raise InputError(f"{directory} holds a {config.architecture!r} model, not the motion guide (calid-motion)")
    return model


#: Model folder name looked up by :func:`default_model` (``$CALID_MODEL_DIR``, the bundle, the user cache).
DEFAULT_MODEL = "calid-motion-acdc"


@lru_cache(maxsize=1)
def default_model() -> MotionNet:
    """The installed motion guide (loaded once per process); ModelError says how to get it."""
    from calid.models.search import find_model

    return from_pretrained(find_model(DEFAULT_MODEL))


def _checked_pairs(prev: np.ndarray, next_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prev, next_ = np.asarray(prev), np.asarray(next_)
    if prev.shape != next_.shape:
        raise InputError(f"prev and next must have the same shape, not {prev.shape} and {next_.shape}")
    if prev.ndim not in (2, 3) or min(prev.shape[-2:]) < 2:
        raise InputError(f"prev and next must be slices (Y, X) or pairs of slices (P, Y, X), not shape {prev.shape}")
    for name, array in (("prev", prev), ("next", next_)):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise InputError(f"{name} must hold real numbers, not {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise InputError(f"{name} holds NaN or infinite values; fill them before interpolating")
    return prev, next_


def _checked_fractions(fractions: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        raise InputError(f"fractions must be a non-empty list of numbers in [0, 1], not {fractions!r}")
    return values


@torch.inference_mode()
def interpolate(
    model: MotionNet,
    prev: np.ndarray,
    next_: np.ndarray,
    fractions: Sequence[float] | np.ndarray,
    *,
    device: str | torch.device | None = None,
    batch_pairs: int = 16,
) -> np.ndarray:
    """Slices at each fraction from ``prev`` (a = 0) to ``next_`` (a = 1), like ``morph_between``.

    ``prev``/``next_`` are one slice (Y, X) -> (F, Y, X), or P pairs (P, Y, X) -> (P, F, Y, X).
    Pairs are batched ``batch_pairs`` at a time; ``device`` defaults to the model's.
    """
    from calid.models.preprocess import intensity_scale, pad_to_multiple

    prev, next_ = _checked_pairs(prev, next_)
    values = _checked_fractions(fractions)
    single = prev.ndim == 2
    prev_all = prev[None] if single else prev
    next_all = next_[None] if single else next_
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    scale = intensity_scale(np.concatenate([prev_all, next_all]))
    out = np.empty((prev_all.shape[0], values.size, *prev_all.shape[1:]), np.float32)
    a_all = torch.tensor(values, dtype=torch.float32, device=device)
    for start in range(0, prev_all.shape[0], max(1, int(batch_pairs))):
        stop = min(start + max(1, int(batch_pairs)), prev_all.shape[0])
        pair = torch.from_numpy(np.stack([prev_all[start:stop], next_all[start:stop]], 1).astype(np.float32) / scale)
        pair, (height, width) = pad_to_multiple(pair.to(device), model.size_multiple)
        p, n = pair[:, 0:1], pair[:, 1:2]
        flows = model.pair_flows(p, n)
        count = stop - start
        image = model.targets(p, n, flows, a_all.expand(count, values.size))["image"][:, 0, :height, :width]
        out[start:stop] = (image * scale).view(count, values.size, height, width).cpu().numpy()
    return out[0] if single else out


def motion_interpolate(stack: np.ndarray, factor: int, model: MotionNet, device: str | None = None) -> np.ndarray:
    """Dense float32 stack (``(Z - 1) * factor + 1`` slices) from every pair of neighbours at once."""
    stack = np.asarray(stack, dtype=np.float32)
    dense = np.empty(((stack.shape[0] - 1) * factor + 1, *stack.shape[1:]), np.float32)
    dense[::factor] = stack
    if factor > 1:
        between = interpolate(model, stack[:-1], stack[1:], np.arange(1, factor) / factor, device=device)
        for z in range(stack.shape[0] - 1):
            dense[z * factor + 1 : (z + 1) * factor] = between[z]
    return dense
