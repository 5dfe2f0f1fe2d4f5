"""DDIM sampling of missing-slice latents, conditioned on acquired neighbours.

All missing slices are independent given the acquired ones, so by default they are
sampled together in one batch (chunked to bound memory). The autoregressive order
instead fills each gap left to right, conditioning every new slice on the one made
just before it. Randomness comes only from an explicit ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from calid.methods.sampler_settings import VIEWS, SamplerSettings, schedule_stride


def view_of(tensor: torch.Tensor, view: tuple[bool, bool, bool], inverse: bool = False) -> torch.Tensor:
    """``tensor`` (..., h, w) flipped and/or transposed in-plane as ``view`` says (or that undone)."""
    flip_h, flip_w, transpose = view
    dims = [d for d, flip in ((-2, flip_h), (-1, flip_w)) if flip]
    if transpose and inverse:
        tensor = tensor.transpose(-1, -2)
    if dims:
        tensor = torch.flip(tensor, dims)
    if transpose and not inverse:
        tensor = tensor.transpose(-1, -2)
    return tensor


def predict_in_views(denoiser, latents, t, context, fraction, gap_mm, views: int, model_kwargs: dict,
                     guide: torch.Tensor | None = None) -> torch.Tensor:
    """The denoiser's prediction averaged over the first ``views`` in-plane views (one view: a plain call).

    ``guide`` goes in as an input only to a network that reads one (``guide_input``).
    """
    total = None
    for view in VIEWS[:views]:
        extra = {"guide": view_of(guide, view)} if guide is not None and takes_guide(denoiser) else {}
        prediction = denoiser(view_of(latents, view), t, view_of(context, view), fraction, gap_mm, **model_kwargs, **extra)
        prediction = view_of(prediction.to(latents.dtype), view, inverse=True)
        total = prediction if total is None else total + prediction
    return total / views


def takes_guide(denoiser) -> bool:
    """True for a denoiser that reads the guide's latent as an input (``SliceDenoiser(guide_input=True)``)."""
    return bool(getattr(denoiser, "guide_input", False))


def _denoise_chunk(denoiser, scheduler, context, fraction, gap_mm, noise, settings, model_kwargs, guide=None) -> torch.Tensor:
    latents = noise
    for timestep in scheduler.timesteps:
        t = torch.full((latents.shape[0],), int(timestep), device=latents.device, dtype=torch.long)
        prediction = predict_in_views(denoiser, latents, t, context, fraction, gap_mm, settings.views, model_kwargs, guide)
        latents, _ = scheduler.step(prediction, int(timestep), latents, eta=settings.eta, generator=None)
    return latents


def trailing_schedule(scheduler, steps: int, strength: float = 1.0):
    """DDIM timesteps S-1, S-1-S/steps, ... (S = strength * T) spaced exactly as the scheduler's step() assumes.

    MONAI spaces its timesteps with linspace(0, T-1) while ``step()`` moves to
    ``t - T // steps``: with 2 or more steps the noise level after a step does not match
    the next timestep (2 steps visit t = 999 then t = 0 but step to t = 499). Trailing
    spacing starts from pure noise and keeps every step consistent. ``strength`` < 1
    starts part of the way down (a guided start, see :func:`sample_latents`); the stride
    S // steps must be one that ``step()`` can take (T // (T // stride) == stride).
    """
    total = scheduler.num_train_timesteps
    span, ratio = schedule_stride(total, steps, strength)
    scheduler.set_timesteps(total // ratio)  # step() then moves by exactly `ratio`
    scheduler.timesteps = torch.arange(span - 1, -1, -ratio)[:steps]
    return scheduler


def guided_start(scheduler, guide: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The noisy latent at the schedule's first timestep whose clean part is ``guide`` (SDEdit)."""
    alpha = scheduler.alphas_cumprod[int(scheduler.timesteps[0])].to(guide.device, guide.dtype)
    return alpha.sqrt() * guide + (1 - alpha).sqrt() * noise.to(guide.device, guide.dtype)


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
    guide: torch.Tensor | None = None,
) -> torch.Tensor:
    """(samples, N, C, h, w) latents for N missing slices given context (N, 2k, C, h, w).

    ``model_kwargs`` go to every denoiser call (the 2D+T model's ``frames``; chunks must
    then hold whole clips, i.e. ``settings.chunk`` a multiple of it). ``guide`` (N, C, h, w),
    when given, is a first estimate of each latent: sampling starts at ``settings.strength``
    of the way up the noise schedule from the guide noised to that level instead of from
    pure noise, so the denoiser refines the estimate rather than drawing from scratch.
    """
    count, _, channels, height, width = context.shape
    # all noise drawn first, on CPU, so results do not depend on chunking or device
    noise = torch.randn((settings.samples, count, channels, height, width), generator=generator) * settings.temperature
    strength = settings.strength if guide is not None else 1.0
    scheduler = trailing_schedule(denoiser.make_scheduler(), settings.steps, strength)
    out = torch.empty_like(noise, device=context.device)
    for sample in range(settings.samples):
        for start in range(0, count, settings.chunk):
            part = slice(start, start + settings.chunk)
            initial = noise[sample, part].to(context.device)
            part_guide = guide[part].to(context.device) if guide is not None else None
            if part_guide is not None:
                initial = guided_start(scheduler, part_guide, initial)
            out[sample, part] = _denoise_chunk(
                denoiser, scheduler, context[part], fraction[part], gap_mm[part], initial, settings, model_kwargs or {}, part_guide,
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
    guide: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Latents of the missing slices of stacks ``acquired`` (B, Z, C, h, w) -> ((samples, B, M, C, h, w), dense indices).

    ``gaps`` limits the work to those gaps (memory is then bounded by their count).
    ``temporal``: B is the frames of one cine and the denoiser sees each missing slice
    at all of them at once (clips of B frames; parallel order only). ``guide``
    (B, M, C, h, w): first estimates of the missing latents (see :func:`sample_latents`).
    """
    batch, count = acquired.shape[:2]
    k = denoiser.neighbours
    contexts, fractions, targets = gap_requests(count, factor, k, gaps)
    if not targets:
        return acquired.new_zeros((settings.samples, batch, 0, *acquired.shape[2:])), []
    if guide is not None and guide.shape[:2] != (batch, len(targets)):
        raise ValueError(f"guide must hold ({batch}, {len(targets)}) latents, not {tuple(guide.shape[:2])}")
    if temporal:
        return _temporal(denoiser, acquired, contexts, fractions, gap_mm, settings, generator, on_chunk, guide), targets
    if settings.order == "parallel":
        context = acquired[:, contexts].flatten(0, 1)  # (B*M, 2k, C, h, w)
        fraction = torch.tensor(fractions, device=acquired.device).repeat(batch)
        gaps_mm = torch.full_like(fraction, float(gap_mm))
        flat_guide = guide.flatten(0, 1) if guide is not None else None
        latents = sample_latents(denoiser, context, fraction, gaps_mm, settings, generator, on_chunk, guide=flat_guide)
        return latents.unflatten(1, (batch, len(targets))), targets
    return _autoregressive(denoiser, acquired, factor, gap_mm, settings, generator, on_chunk, gaps, guide), targets


def _temporal(denoiser, acquired, contexts, fractions, gap_mm, settings, generator, on_chunk, guide=None) -> torch.Tensor:
    """Clip-major batches: every frame of one missing slice together, whole clips per chunk."""
    if settings.order != "parallel":
        raise ValueError("the 2D+T sampler fills all missing slices in parallel; order 'autoregressive' is for 3D mode")
    frames = acquired.shape[0]
    context = acquired[:, contexts].transpose(0, 1).flatten(0, 1)  # (M*T, 2k, C, h, w)
    fraction = torch.tensor(fractions, device=acquired.device).repeat_interleave(frames)
    gaps_mm = torch.full_like(fraction, float(gap_mm))
    clip_settings = replace(settings, chunk=frames * max(1, settings.chunk // frames))
    clip_guide = guide.transpose(0, 1).flatten(0, 1) if guide is not None else None  # (M*T, C, h, w) like context
    latents = sample_latents(denoiser, context, fraction, gaps_mm, clip_settings, generator, on_chunk, {"frames": frames}, clip_guide)
    return latents.unflatten(1, (len(contexts), frames)).transpose(1, 2)  # (S, T, M, C, h, w)


def _autoregressive(denoiser, acquired, factor, gap_mm, settings, generator, on_chunk=None, gaps: range | None = None,
                    guide: torch.Tensor | None = None) -> torch.Tensor:
    """Fill each gap left to right: slice m is conditioned on slice m-1 (made just before) and the next acquired one."""
    batch, count = acquired.shape[:2]
    k = denoiser.neighbours
    gaps = gaps if gaps is not None else range(count - 1)
    base = acquired[:, [neighbour_indices(g, count, k) for g in gaps]]  # (B, G, 2k, C, h, w)
    base = base.unsqueeze(0).repeat(settings.samples, 1, 1, 1, 1, 1, 1).flatten(0, 2)  # (S*B*G, 2k, ...)
    if guide is not None:  # (B, G*(factor-1), ...) -> per step (S*B*G, ...) like base
        guide = guide.unflatten(1, (len(gaps), factor - 1)).unsqueeze(0).expand(settings.samples, -1, -1, -1, -1, -1, -1)
    single = replace(settings, samples=1, order="parallel")
    made = []
    for step in range(1, factor):
        # the previous slice sits at (step-1)/factor; the remaining distance to the next acquired one shrinks
        remaining = (factor - step + 1) / factor
        fraction = torch.full((base.shape[0],), (1 / factor) / remaining, device=acquired.device)
        gap = torch.full_like(fraction, float(gap_mm) * remaining)
        step_guide = guide[:, :, :, step - 1].flatten(0, 2) if guide is not None else None
        latents = sample_latents(denoiser, base, fraction, gap, single, generator, on_chunk, guide=step_guide)[0]
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
