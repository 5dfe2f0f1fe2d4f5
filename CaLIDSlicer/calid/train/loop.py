"""The one training loop both models share: seeded, resumable, DDP-aware, logged.

A task supplies ``draw_batch(generator) -> batch`` (its own random sampling of the
data) and ``loss_of(model, batch) -> (loss, logged values)``; the loop owns the
optimizer, learning-rate schedule, checkpoints and log lines.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from calid.methods.precision import network_autocast, resolve_precision
from calid.train.checkpoint import load_checkpoint, save_checkpoint
from calid.train.distributed import DistributedContext, unwrap


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    learning_rate: float = 5e-4
    warmup: int = 100
    checkpoint_every: int = 200
    log_every: int = 20
    grad_clip: float = 1.0
    #: Wall-clock budget of this call in minutes (None: none). At the deadline the loop checkpoints and
    #: returns, so a lent machine's call ends inside its limit; ``--resume`` goes on from there.
    minutes: float | None = None
    #: The arithmetic of the forward pass ("auto": bfloat16 autocast where the hardware has it, CUDA
    #: GPUs with bf16 and AMX CPUs; :mod:`calid.methods.precision`). The weights stay float32.
    precision: str = "auto"


def learning_rate(step: int, settings: LoopSettings) -> float:
    """Linear warm-up then cosine decay to 5% of the peak at ``settings.steps``."""
    if step < settings.warmup:
        return settings.learning_rate * (step + 1) / settings.warmup
    progress = min(1.0, (step - settings.warmup) / max(1, settings.steps - settings.warmup))
    return settings.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: torch.nn.Module,
    draw_batch: Callable[[torch.Generator], Any],
    loss_of: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]],
    settings: LoopSettings,
    context: DistributedContext,
    run_dir: Path | None,
    seed: int,
    resume: bool = False,
    on_checkpoint: Callable[[int], None] | None = None,
) -> list[float]:
    """Run until ``settings.steps``; returns the per-step losses of this call (rank-local)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    start = 0
    if resume and run_dir is not None:
        info = load_checkpoint(run_dir, unwrap(model), optimizer)
        start = info["step"] if info else 0
    generator = torch.Generator().manual_seed(seed * 1_000_003 + context.rank * 7919 + start)
    losses: list[float] = []
    started = time.perf_counter()
    deadline = None if settings.minutes is None else started + 60 * settings.minutes
    precision = resolve_precision(settings.precision, context.device)  # once, not on every step
    for step in range(start, settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        batch = draw_batch(generator)
        with network_autocast(context.device, precision):
            loss, logged = loss_of(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if context.is_main and (done % settings.log_every == 0 or done == settings.steps):
            rate = (time.perf_counter() - started) / (done - start)
            print(json.dumps({"step": done, "loss": round(losses[-1], 5), **logged, "s_per_step": round(rate, 3)}), flush=True)
        out_of_time = deadline is not None and time.perf_counter() >= deadline
        if run_dir is not None and context.is_main and (done % settings.checkpoint_every == 0 or done == settings.steps or out_of_time):
            save_checkpoint(run_dir, unwrap(model), optimizer, {"step": done, "seed": seed})
            if on_checkpoint is not None:
                on_checkpoint(done)
        if out_of_time:
            if context.is_main:
                print(json.dumps({"event": "deadline", "step": done, "of": settings.steps, "minutes": settings.minutes}), flush=True)
            break
    return losses

