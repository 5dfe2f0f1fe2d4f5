"""Denoiser training on cached latents: self-supervised slice interpolation from real stacks.

A real stack with slice spacing s gives free training pairs: pretend only every g-th
slice was acquired (g in 2..4, so the acquired gap is g*s mm), pick a slice j strictly
between acquired slices i and i+g as the target (a = (j - i) / g), and condition on
the latents of the acquired neighbours. Latents are computed once by the frozen
autoencoder, so a step costs only the small latent U-Net.
"""

from __future__ import annotations

import numpy as np
import torch

from calid.models.denoiser import linear_blend
from calid.train.augment import centred_crop_box, dihedral
# encode_images, encode_stacks, save_latents, load_latents: re-exported for code written before they moved to latents.py
from calid.train.latents import (GAP_WEIGHTS, GAPS, LatentStack, encode_images, encode_stacks, load_latents,  # noqa: F401
                                 save_latents)


def training_example(count: int, generator: torch.Generator) -> tuple[int, int, int] | None:
    """(i, j, g) for a stack of ``count`` slices: acquired i and i+g, target j in between."""
    choices = [(g, w) for g, w in zip(GAPS, GAP_WEIGHTS) if g <= count - 1]
    if not choices:
        return None
    weights = torch.tensor([w for _, w in choices])
    gap = choices[int(torch.multinomial(weights, 1, generator=generator))][0]
    first = int(torch.randint(0, count - gap, (1,), generator=generator))
    target = first + int(torch.randint(1, gap, (1,), generator=generator))
    return first, target, gap


def context_indices(first: int, gap: int, count: int, neighbours: int) -> list[int]:
    """Acquired slices i - (k-1)g .. i + kg, repeated at the ends exactly like inference does."""
    after_first = first + gap
    before = [first - gap * min(m, first // gap) for m in reversed(range(neighbours))]
    after = [after_first + gap * min(m, (count - 1 - after_first) // gap) for m in range(neighbours)]
    return before + after


def latent_batch(stacks: list[LatentStack], batch: int, crop: int, neighbours: int, generator: torch.Generator,
                 augment: bool = False, guides: list[LatentStack | None] | None = None):
    """(target, context, fraction, gap_mm[, guide]) for ``batch`` random examples; crop in latent pixels.

    Files are drawn uniformly first, then a frame, so long cines do not drown 3D volumes.
    ``augment``: each example in one of the 8 flips/quarter turns (see :func:`orient`).
    ``guides`` (per stack, from :func:`calid.train.guides.build_guides`): draw only stacks that
    have them and also return each example's registration-guide latent, cropped and turned alike.
    """
    from calid.train.guides import guide_row

    files: dict[str, list[int]] = {}
    for index, stack in enumerate(stacks):
        if stack.latents.shape[0] >= 3 and (guides is None or guides[index] is not None):
            files.setdefault(stack.source.split("#")[0], []).append(index)
    groups = list(files.values())
    targets, contexts, fractions, gaps, starts = [], [], [], [], []
    for _ in range(batch):
        group = groups[int(torch.randint(len(groups), (1,), generator=generator))]
        index = group[int(torch.randint(len(group), (1,), generator=generator))]
        stack = stacks[index]
        count, _, height, width = stack.latents.shape
        first, target, gap = training_example(count, generator)
        size = min(crop, height, width)
        top, left = centred_crop_box(height, width, size, generator)
        window = stack.latents[:, :, top : top + size, left : left + size]
        if guides is not None:  # the guide rides along as one more slice, so crop and turn match
            guide = guides[index].latents[guide_row(count, first, target, gap)]
            window = np.concatenate([window, guide[None, :, top : top + size, left : left + size]])
        window = torch.from_numpy(window.astype(np.float32))
        if size < crop:
            window = torch.nn.functional.pad(window, (0, crop - size, 0, crop - size), mode="replicate")
        window = orient(window, generator) if augment else window
        targets.append(window[target])
        contexts.append(window[context_indices(first, gap, count, neighbours)])
        fractions.append((target - first) / gap)
        gaps.append(gap * stack.slice_spacing)
        if guides is not None:
            starts.append(window[-1])
    drawn = (torch.stack(targets), torch.stack(contexts), torch.tensor(fractions), torch.tensor(gaps))
    return drawn if guides is None else (*drawn, torch.stack(starts))


def orient(window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random flip/quarter turn of latent slices (all of one example alike).

    Where the heart's right ventricle lies in the image depends on the scanner's planning
    (ACDC and Sunnybrook differ); a network that has only seen one layout loses about 0.3 dB
    on transposed ACDC validation volumes. The autoencoder was trained on all 8 layouts, so a
    turned latent is close to the latent of the turned image.
    """
    return dihedral(window, generator)


def diffusion_batch(stacks: list[LatentStack], batch: int, crop: int, neighbours: int, timesteps: int, generator: torch.Generator,
                    augment: bool = False, guides: list[LatentStack | None] | None = None):
    """A latent batch plus its noise and timesteps (and, with ``guides``, each example's guide last), all drawn from ``generator``."""
    drawn = latent_batch(stacks, batch, crop, neighbours, generator, augment, guides)
    noise = torch.randn(drawn[0].shape, generator=generator)
    steps = torch.randint(0, timesteps, (batch,), generator=generator)
    return (*drawn[:4], noise, steps, *drawn[4:])


def guide_dropout(guide: torch.Tensor, context: torch.Tensor, fraction: torch.Tensor, neighbours: int, rate: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The guide latents with a share ``rate`` of examples replaced by the linear blend of their neighbours.

    A ``guide_input`` network meets the linear blend in place of a guide when the user
    samples without one (``--guide none``); showing it so in training keeps that path sound.
    """
    linear = linear_blend(context, fraction, neighbours).to(guide.dtype)
    dropped = (torch.rand(guide.shape[0], generator=generator) < rate).to(guide.device).view(-1, 1, 1, 1)
    return torch.where(dropped, linear, guide)


def denoiser_loss(model: torch.nn.Module, scheduler, batch, prediction_type: str, **model_kwargs) -> tuple[torch.Tensor, dict]:
    """MSE of the network's prediction (x0, noise or v) at the drawn diffusion timesteps."""
    target, context, fraction, gap_mm, noise, timesteps = batch[:6]
    noisy = scheduler.add_noise(target, noise, timesteps)
    prediction = model(noisy, timesteps, context, fraction, gap_mm, **model_kwargs)
    if prediction_type == "sample":
        goal = target
    elif prediction_type == "epsilon":
        goal = noise
    else:
        goal = scheduler.get_velocity(target, noise, timesteps)
    return torch.nn.functional.mse_loss(prediction, goal), {}


def texture_error(estimate: torch.Tensor, target: torch.Tensor, window: int = 4) -> torch.Tensor:
    """Mean |local energy of the estimate's fine band - the target's| over windows of ``window`` latent pixels.

    The MSE of an x0 estimate is smallest at the conditional mean, which is flatter than any real
    slice. This term asks for as much fine structure as the target has in each window, whatever
    its exact position, so it rewards texture without asking the network to guess its phase.
    """
    import torch.nn.functional as F

    def band_energy(latent: torch.Tensor) -> torch.Tensor:
        fine = latent - F.avg_pool2d(latent, 3, stride=1, padding=1, count_include_pad=False)
        return (F.avg_pool2d(fine.pow(2), window, stride=window, ceil_mode=True) + 1e-6).sqrt()

    return (band_energy(estimate) - band_energy(target)).abs().mean()


def trajectory_loss(model: torch.nn.Module, scheduler, batch, extra_error=None, guide: torch.Tensor | None = None,
                    guide_input: torch.Tensor | None = None, **model_kwargs) -> tuple[torch.Tensor, dict]:
    """Error of the x0 estimate at every step of the deterministic sampler, on the inputs it really sees.

    Inference starts from zeros (temperature 0) and takes few DDIM steps (``scheduler``'s
    timesteps), inputs that noise-level training never shows; here each step is fed the
    (detached) result of the step before. ``extra_error(estimate, target)`` adds a term
    (the 2D+T model's frame-change error). ``guide``: start instead from the registration
    guide noised to the first timestep, as the guided sampler does (``scheduler`` then
    holds the guided schedule). ``guide_input``: the guide latent a ``guide_input`` network reads at every step.
    """
    from calid.methods.sampling import guided_start

    target, context, fraction, gap_mm = batch[:4]
    latents = torch.zeros_like(target) if guide is None else guided_start(scheduler, guide, torch.zeros_like(target))
    if guide_input is not None:
        model_kwargs = {**model_kwargs, "guide": guide_input}
    total = target.new_zeros(())
    for timestep in scheduler.timesteps:
        steps = torch.full((target.shape[0],), int(timestep), dtype=torch.long, device=target.device)
        estimate = model(latents, steps, context, fraction, gap_mm, **model_kwargs)
        total = total + torch.nn.functional.mse_loss(estimate, target)
        if extra_error is not None:
            total = total + extra_error(estimate, target)
        latents, _ = scheduler.step(estimate.detach(), int(timestep), latents, eta=0.0)
    return total / len(scheduler.timesteps), {}
