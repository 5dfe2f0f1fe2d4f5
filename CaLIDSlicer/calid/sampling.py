"""DDIM sampling of missing-slice latents, conditioned on acquired neighbours.

All missing slices are independent given the acquired ones, so by default they are
sampled together in one batch (chunked to bound memory). The autoregressive order
instead fills each gap left to right, conditioning every new slice on the one made
just before it. Randomness comes only from an explicit ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

ORDERS = ("parallel", "autoregressive")


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 10
    samples: int = 1
    eta: float = 0.0
    temperature: float = 1.0
    chunk: int = 32
    order: str = "parallel"

    def __post_init__(self) -> None:
        for name in ("steps", "samples", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.eta < 0 or self.temperature < 0:
            raise ValueError(f"eta and temperature must be >= 0, not {self.eta} and {self.temperature}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {self.order!r}")


def _denoise_chunk(denoiser, scheduler, context, fraction, gap_mm, noise, settings, model_kwargs) -> torch.Tensor:
    latents = noise
    for timestep in scheduler.timesteps:
        t = torch.full((latents.shape[0],), int(timestep), device=latents.device, dtype=torch.long)
        prediction = denoiser(latents, t, context, fraction, gap_mm, **model_kwargs).to(latents.dtype)
        latents, _ = scheduler.step(prediction, int(timestep), latents, eta=settings.eta, generator=None)
    return latents


def trailing_schedule(scheduler, steps: int):
    """DDIM timesteps T-1, T-1-T/steps, ... spaced exactly as the scheduler's step() assumes.

    MONAI spaces its timesteps with linspace(0, T-1) while ``step()`` moves to
    ``t - T // steps``: with 2 or more steps the noise level after a step does not match
    the next timestep (2 steps visit t = 999 then t = 0 but step to t = 499). Trailing
    spacing starts from pure noise and keeps every step consistent.
    """
    if steps > scheduler.num_train_timesteps:
        raise ValueError(f"steps must be at most {scheduler.num_train_timesteps}, not {steps}")
    scheduler.set_timesteps(steps)
    ratio = scheduler.num_train_timesteps // steps
    scheduler.timesteps = torch.arange(scheduler.num_train_timesteps - 1, -1, -ratio)[:steps]
    return scheduler


@torch.no_grad()
def sample_latents(
    denoiser: torch.nn.Module,
    context: torch.Tensor,
    fraction: torch.Tensor,
    gap_mm: torch.Tensor,
    settings: SamplerSettings,
    generator: torch.Generator,
    on_chunk: Callable[[], None] | None = None,
    model_kwargs: dict | None = None,
) -> torch.Tensor:
    """(samples, N, C, h, w) latents for N missing slices given context (N, 2k, C, h, w).

    ``model_kwargs`` go to every denoiser call (the 2D+T model's ``frames``; chunks must
    then hold whole clips, i.e. ``settings.chunk`` a multiple of it).
    """
    count, _, channels, height, width = context.shape
    # all noise drawn first, on CPU, so results do not depend on chunking or device
    noise = torch.randn((settings.samples, count, channels, height, width), generator=generator) * settings.temperature
    scheduler = trailing_schedule(denoiser.make_scheduler(), settings.steps)
    out = torch.empty_like(noise, device=context.device)
    for sample in range(settings.samples):
        for start in range(0, count, settings.chunk):
            part = slice(start, start + settings.chunk)
            out[sample, part] = _denoise_chunk(
                denoiser, scheduler, context[part], fraction[part], gap_mm[part], noise[sample, part].to(context.device), settings,
                model_kwargs or {},
            )
            if on_chunk is not None:
                on_chunk()
    return out


def neighbour_indices(position: int, count: int, neighbours: int) -> list[int]:
    """Acquired slices around the gap after ``position``, clamped (repeated) at the stack ends."""
    before = [max(position - k, 0) for k in reversed(range(neighbours))]
    after = [min(position + 1 + k, count - 1) for k in range(neighbours)]
    return before + after


def gap_requests(acquired: int, factor: int, neighbours: int, gaps: range | None = None) -> tuple[list[list[int]], list[float], list[int]]:
    """For each missing dense slice (of ``gaps``, default all): its acquired neighbours, fraction a, and dense index."""
    contexts, fractions, targets = [], [], []
    for gap in gaps if gaps is not None else range(acquired - 1):
        for step in range(1, factor):
            contexts.append(neighbour_indices(gap, acquired, neighbours))
            fractions.append(step / factor)
            targets.append(gap * factor + step)
    return contexts, fractions, targets


def fill_latents(
    denoiser: torch.nn.Module,
    acquired: torch.Tensor,
    factor: int,
    gap_mm: float,
    settings: SamplerSettings,
    generator: torch.Generator,
    on_chunk: Callable[[], None] | None = None,
    gaps: range | None = None,
    temporal: bool = False,
) -> tuple[torch.Tensor, list[int]]:
    """Latents of the missing slices of stacks ``acquired`` (B, Z, C, h, w) -> ((samples, B, M, C, h, w), dense indices).

    ``gaps`` limits the work to those gaps (memory is then bounded by their count).
    ``temporal``: B is the frames of one cine and the denoiser sees each missing slice
    at all of them at once (clips of B frames; parallel order only).
    """
    batch, count = acquired.shape[:2]
    k = denoiser.neighbours
    contexts, fractions, targets = gap_requests(count, factor, k, gaps)
    if not targets:
        return acquired.new_zeros((settings.samples, batch, 0, *acquired.shape[2:])), []
    if temporal:
        return _temporal(denoiser, acquired, contexts, fractions, gap_mm, settings, generator, on_chunk), targets
    if settings.order == "parallel":
        context = acquired[:, contexts].flatten(0, 1)  # (B*M, 2k, C, h, w)
        fraction = torch.tensor(fractions, device=acquired.device).repeat(batch)
        gaps_mm = torch.full_like(fraction, float(gap_mm))
        latents = sample_latents(denoiser, context, fraction, gaps_mm, settings, generator, on_chunk)
        return latents.unflatten(1, (batch, len(targets))), targets
    return _autoregressive(denoiser, acquired, factor, gap_mm, settings, generator, on_chunk, gaps), targets


def _temporal(denoiser, acquired, contexts, fractions, gap_mm, settings, generator, on_chunk) -> torch.Tensor:
    """Clip-major batches: every frame of one missing slice together, whole clips per chunk."""
    if settings.order != "parallel":
        raise ValueError("the 2D+T sampler fills all missing slices in parallel; order 'autoregressive' is for 3D mode")
    frames = acquired.shape[0]
    context = acquired[:, contexts].transpose(0, 1).flatten(0, 1)  # (M*T, 2k, C, h, w)
    fraction = torch.tensor(fractions, device=acquired.device).repeat_interleave(frames)
    gaps_mm = torch.full_like(fraction, float(gap_mm))
    clip_settings = replace(settings, chunk=frames * max(1, settings.chunk // frames))
    latents = sample_latents(denoiser, context, fraction, gaps_mm, clip_settings, generator, on_chunk, {"frames": frames})
    return latents.unflatten(1, (len(contexts), frames)).transpose(1, 2)  # (S, T, M, C, h, w)


def _autoregressive(denoiser, acquired, factor, gap_mm, settings, generator, on_chunk=None, gaps: range | None = None) -> torch.Tensor:
    """Fill each gap left to right: slice m is conditioned on slice m-1 (made just before) and the next acquired one."""
    batch, count = acquired.shape[:2]
    k = denoiser.neighbours
    gaps = gaps if gaps is not None else range(count - 1)
    base = acquired[:, [neighbour_indices(g, count, k) for g in gaps]]  # (B, G, 2k, C, h, w)
    base = base.unsqueeze(0).repeat(settings.samples, 1, 1, 1, 1, 1, 1).flatten(0, 2)  # (S*B*G, 2k, ...)
    single = SamplerSettings(settings.steps, 1, settings.eta, settings.temperature, settings.chunk)
    made = []
    for step in range(1, factor):
        # the previous slice sits at (step-1)/factor; the remaining distance to the next acquired one shrinks
        remaining = (factor - step + 1) / factor
        fraction = torch.full((base.shape[0],), (1 / factor) / remaining, device=acquired.device)
        gap = torch.full_like(fraction, float(gap_mm) * remaining)
        latents = sample_latents(denoiser, base, fraction, gap, single, generator, on_chunk)[0]
        made.append(latents)
        base = base.clone()
        base[:, k - 1] = latents
    stacked = torch.stack(made, dim=1)  # (S*B*G, factor-1, C, h, w)
    return stacked.unflatten(0, (settings.samples, batch, len(gaps))).flatten(2, 3)


def chunk_count(missing: int, factor: int, settings: SamplerSettings, frames: int | None = None) -> int:
    """How many denoiser chunks :func:`fill_latents` runs (for progress totals); ``frames`` for the temporal sampler."""
    if frames is not None:
        return settings.samples * -(-missing // (frames * max(1, settings.chunk // frames)))
    if settings.order == "parallel":
        return settings.samples * -(-missing // settings.chunk)
    per_step = settings.samples * missing // max(factor - 1, 1)
    return (factor - 1) * -(-per_step // settings.chunk)
