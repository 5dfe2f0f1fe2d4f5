"""2D+T denoiser training data: whole cines as latents, clips of every frame of one slice.

The same self-supervision as the 3D denoiser (hide acquired slices, regenerate one in
between), but a training example is the target slice at *every* frame of the cycle,
with its acquired neighbours at the same frames, so the temporal mixing layers learn
how the missing slice moves. Real cines (ACDC cine, training patients only) are mixed
with phantom cines of known anatomy and motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calid.models.preprocess import intensity_scale, normalise
from calid.evaluation.splits import Split
from calid.train.augment import centred_crop_box
from calid.train.data import load_array_list, save_array_list, stack_files
from calid.train.denoiser import context_indices, orient, training_example
from calid.train.latents import encode_images

#: Phantom cines added to the real ones, and their seeds (evaluation phantoms use seeds 0, 1, 2, ...).
PHANTOM_SEED_BASE = 10_000
#: Share of training clips drawn from phantoms.
PHANTOM_SHARE = 0.25


@dataclass(frozen=True)
class Cine:
    """Normalised images (T, Z, Y, X) float16 of one cine and its slice spacing in mm."""

    frames: np.ndarray
    slice_spacing: float
    source: str


def read_cines(data_dirs: list[str | Path], split: Split) -> list[Cine]:
    """Every 4D file of ``split`` patients, normalised over the whole cine like inference does."""
    import SimpleITK as sitk

    cines = []
    for path in stack_files(data_dirs, split):
        image = sitk.ReadImage(str(path))
        if image.GetDimension() != 4:
            continue
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        cines.append(Cine(normalise(array, intensity_scale(array)).astype(np.float16), float(image.GetSpacing()[2]), path.name))
    return cines


def phantom_cines(count: int, size: int = 128, seed_base: int = PHANTOM_SEED_BASE) -> list[Cine]:
    """Phantom cines with drawn ejection fraction, rate, noise and obliquity (seeds apart from evaluation's)."""
    from calid.phantom.generator import make_phantom

    cines = []
    for index in range(count):
        rng = np.random.default_rng(seed_base + index)
        phantom = make_phantom(seed=seed_base + index, n_frames=int(rng.integers(16, 31)), n_slices=int(rng.integers(8, 14)),
                               size=(size, size), ejection_fraction=float(rng.uniform(0.25, 0.7)),
                               heart_rate=float(rng.uniform(50, 100)), noise=float(rng.uniform(0.01, 0.05)),
                               oblique=bool(rng.integers(2)))
        array = phantom.image.array.astype(np.float32)
        cines.append(Cine(normalise(array, intensity_scale(array)).astype(np.float16),
                          phantom.image.slice_spacing, f"phantom{seed_base + index}"))
    return cines


@dataclass(frozen=True)
class LatentCine:
    latents: np.ndarray  # (T, Z, C, h, w) float16
    slice_spacing: float
    source: str


def encode_cines(autoencoder: torch.nn.Module, cines: list[Cine], chunk: int = 32) -> list[LatentCine]:
    encoded = []
    for cine in cines:
        latents = encode_images(autoencoder, cine.frames.reshape(-1, *cine.frames.shape[2:]), chunk)
        encoded.append(LatentCine(latents.reshape(*cine.frames.shape[:2], *latents.shape[1:]), cine.slice_spacing, cine.source))
    return encoded


def save_cines(path: Path, cines: list[LatentCine]) -> None:
    save_array_list(path, [c.latents for c in cines], [c.slice_spacing for c in cines], [c.source for c in cines])


def load_cines(path: Path) -> list[LatentCine]:
    return [LatentCine(*item) for item in load_array_list(path)]


def _pick_cine(cines: list[LatentCine], generator: torch.Generator, guides: list | None = None) -> int:
    """Index of a drawn cine: phantoms with PHANTOM_SHARE; with ``guides`` only cines that have one."""
    if guides is not None:
        pool = [i for i, guide in enumerate(guides) if guide is not None]
        return pool[int(torch.randint(len(pool), (1,), generator=generator))]
    phantoms = [i for i, c in enumerate(cines) if c.source.startswith("phantom")]
    real = [i for i, c in enumerate(cines) if not c.source.startswith("phantom")]
    pool = phantoms if phantoms and (not real or float(torch.rand(1, generator=generator)) < PHANTOM_SHARE) else real
    return pool[int(torch.randint(len(pool), (1,), generator=generator))]


def _frame_order(frames: int, generator: torch.Generator) -> list[int]:
    """All frames, or every second one from a random phase when that still closes the cycle evenly."""
    if frames >= 20 and frames % 2 == 0 and float(torch.rand(1, generator=generator)) < 0.5:
        phase = int(torch.randint(2, (1,), generator=generator))
        return list(range(phase, frames, 2))
    return list(range(frames))


def clip_batch(cines: list[LatentCine], clips: int, crop: int, neighbours: int, generator: torch.Generator, augment: bool = False,
               guides: list[np.ndarray | None] | None = None):
    """``clips`` clips of one cine (different slices and crops), clip-major: (clips * T, ...) tensors and T.

    ``augment``: each clip in one of the 8 flips/quarter turns (all its frames alike).
    ``guides`` (per cine, from :func:`cine_guides`): draw only cines that have them and also
    return each clip's registration-guide latents (before T), cropped and turned alike.
    """
    from calid.train.guides import guide_row

    index = _pick_cine(cines, generator, guides)
    cine = cines[index]
    order = _frame_order(cine.latents.shape[0], generator)
    ordered = cine.latents[order]
    count, _, height, width = ordered.shape[1:]
    targets, contexts, fractions, gaps, starts = [], [], [], [], []
    for _ in range(clips):
        first, target, gap = training_example(count, generator)
        size = min(crop, height, width)
        top, left = centred_crop_box(height, width, size, generator)
        window = ordered[..., top : top + size, left : left + size]
        if guides is not None:  # the guide rides along as one more slice of every frame, so crop and turn match
            guide = guides[index][order, guide_row(count, first, target, gap), :, top : top + size, left : left + size]
            window = np.concatenate([window, guide[:, None]], axis=1)
        window = torch.from_numpy(window.astype(np.float32))
        if size < crop:
            window = torch.nn.functional.pad(window.flatten(0, 1), (0, crop - size, 0, crop - size), mode="replicate")
            window = window.unflatten(0, (len(order), -1))
        window = orient(window, generator) if augment else window
        targets.append(window[:, target])
        contexts.append(window[:, context_indices(first, gap, count, neighbours)])
        fractions += [(target - first) / gap] * len(order)
        gaps += [gap * cine.slice_spacing] * len(order)
        if guides is not None:
            starts.append(window[:, -1])
    drawn = (torch.cat(targets), torch.cat(contexts), torch.tensor(fractions), torch.tensor(gaps))
    return (*drawn, len(order)) if guides is None else (*drawn, torch.cat(starts), len(order))


def cine_guides(autoencoder: torch.nn.Module, cines: list[Cine], data_dirs: list[str], on_cine=None) -> list[np.ndarray | None]:
    """Registration-guide latents (T, rows, C, h, w) float16 of every real cine (None for phantoms).

    Row r of frame t is the latent of frame t's acquired slices morphed into each other as
    :func:`calid.train.guides.guide_rows` lists them, the start the guided sampler uses.
    """
    from calid.train.guides import pixel_spacings, stack_guides

    spacing = pixel_spacings(data_dirs, [c.source for c in cines if not c.source.startswith("phantom")])
    out: list[np.ndarray | None] = []
    for cine in cines:
        if cine.source.startswith("phantom") or cine.frames.shape[1] < 3:
            out.append(None)
        else:
            images = np.stack([stack_guides(frame, spacing[cine.source]) for frame in cine.frames])  # (T, rows, Y, X)
            latents = encode_images(autoencoder, images.reshape(-1, *images.shape[2:]))
            out.append(latents.reshape(*images.shape[:2], *latents.shape[1:]))
        if on_cine is not None:
            on_cine()
    return out


def temporal_batch(cines: list[LatentCine], clips: int, crop: int, neighbours: int, timesteps: int, generator: torch.Generator,
                   augment: bool = False):
    """A clip batch plus noise (independent per frame) and one timestep per clip, shared by its frames."""
    target, context, fraction, gap_mm, frames = clip_batch(cines, clips, crop, neighbours, generator, augment)
    noise = torch.randn(target.shape, generator=generator)
    steps = torch.randint(0, timesteps, (clips,), generator=generator).repeat_interleave(frames)
    return target, context, fraction, gap_mm, noise, steps, frames


def temporal_difference_error(sampled: torch.Tensor, target: torch.Tensor, frames: int) -> float:
    """Mean squared error of frame-to-frame changes (wrap-around), on clip-major latents."""
    return float(((_frame_changes(sampled, frames) - _frame_changes(target, frames)) ** 2).mean())


def _frame_changes(x: torch.Tensor, frames: int) -> torch.Tensor:
    clips = x.unflatten(0, (-1, frames))
    return clips.roll(-1, dims=1) - clips


def frame_change_error(estimate: torch.Tensor, target: torch.Tensor, frames: int) -> torch.Tensor:
    """Mean squared error of frame-to-frame changes (wrap-around), differentiable; clip-major latents."""
    return torch.nn.functional.mse_loss(_frame_changes(estimate, frames), _frame_changes(target, frames))
