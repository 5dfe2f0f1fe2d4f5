"""CUDA-only speed settings for the engine's networks; on the CPU nothing changes.

Channels-last (NHWC) is the layout cuDNN's tensor-core convolutions run in, so 2D convolution
weights are stored that way on CUDA and activations follow; 3D convolutions (the 2D+T model's
temporal mixers) keep their layout. bf16 autocast is applied where the networks are called
(:func:`calid.methods.calid_fill.sample_missing`, :func:`calid.train.loop.train`).
"""

from __future__ import annotations

import torch
from torch import nn


def for_device(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` with its 2D convolution weights channels-last when ``device`` is CUDA; unchanged otherwise."""
    if torch.device(device).type != "cuda":
        return model
    torch.backends.cudnn.benchmark = True  # fixed shapes within a run: let cuDNN pick the fastest kernels
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return model
