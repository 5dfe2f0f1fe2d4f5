"""torchrun support: one process per device, DistributedDataParallel, per-rank data.

Every rank draws its own batches from a generator seeded with ``seed + rank`` (the
training data is sampled at random, not iterated, so seeding is the sharding).
Single-process runs need no launcher: without ``WORLD_SIZE`` nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistributedContext:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(f"cuda:{local_rank}" if device == "cuda" else device)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, target)


def wrap(model: torch.nn.Module, context: DistributedContext) -> torch.nn.Module:
    """DDP around the model when more than one process trains."""
    model = model.to(context.device)
    from calid.models.accel import for_device

    if context.device.type == "cuda":  # CPU training keeps the default layout (its speed there was not measured)
        model = for_device(model, context.device)
    if not context.active:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def barrier(context: DistributedContext) -> None:
    if context.active:
        torch.distributed.barrier()


def teardown(context: DistributedContext) -> None:
    if context.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
