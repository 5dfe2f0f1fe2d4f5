"""Speed settings for the engine's networks at inference: channels-last convolutions on CUDA and CPU.

Channels-last (NHWC) is the layout cuDNN's tensor-core convolutions and oneDNN's CPU
convolutions run in fastest, so 2D convolution weights are stored that way and activations
follow (a convolution with channels-last weights returns channels-last output); 3D
convolutions (the 2D+T model's temporal mixers) keep their layout. On the project's CPU this
made the autoencoder's decode 1.2-1.7 times faster and a whole reconstruction take 0.69-0.88 of
the time, with outputs equal to float rounding (docs/results/bench_cpu_channels_last.md). bfloat16
arithmetic is the other speed setting, chosen where the networks are called
(:mod:`calid.methods.precision`; training keeps its own rule in :func:`calid.train.loop.train`).
"""

from __future__ import annotations

import torch
from torch import nn


def for_device(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` (in place) with its 2D convolution weights channels-last, for inference on ``device``.

    On a CPU only where torch runs convolutions through oneDNN (measured on x86 with AVX-512);
    elsewhere the model is returned unchanged.
    """
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes within a run: let cuDNN pick the fastest kernels
    elif not torch.backends.mkldnn.is_available():
        return model
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return model
