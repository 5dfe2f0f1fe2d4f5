"""The arithmetic the networks run in at inference: float32, or bfloat16 where the hardware has it.

bfloat16 autocast runs convolutions and matrix products in bfloat16 with float32 accumulation.
Where the hardware multiplies bfloat16 natively (CUDA GPUs that support it, x86 CPUs with AMX tiles)
that is 2-3 times faster than float32; elsewhere it is emulated and slower, so precision "auto" picks
bfloat16 only where it is native (docs/results/bench_cpu_precision.md). Acquired slices never go
through a network, so they stay bit-exact at any precision.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from calid.methods.calid_settings import check_precision

if TYPE_CHECKING:
    import torch


def native_bfloat16(device: str | torch.device) -> bool:
    """True where ``device`` multiplies bfloat16 in hardware: a CUDA GPU with bf16, or a CPU with AMX tiles."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x: absent means we cannot tell
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and bool(amx and amx())


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """"float32" or "bfloat16": what ``precision`` ("auto", "float32" or "bfloat16") means on ``device``."""
    check_precision(precision)
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision


def network_autocast(device: str | torch.device, precision: str):
    """The autocast context for networks run (or trained) on ``device`` at ``precision`` (a no-op for float32)."""
    import torch

    if resolve_precision(precision, device) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def full_precision(device: str | torch.device):
    """Autocast off inside a bfloat16 region: for flows, where bfloat16 rounding would move pixels."""
    import torch

    return torch.autocast(torch.device(device).type, enabled=False)
