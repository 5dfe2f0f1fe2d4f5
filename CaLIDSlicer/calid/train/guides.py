"""Registration-guided starts for training the denoiser (``--objective guided``).

At inference the sampler starts from the latent of the registration-based estimate of a
missing slice (:func:`calid.methods.calid_codec.registration_guide`). To train on that start, every
training example needs the same estimate: the acquired slices ``first`` and ``first + gap``
morphed into each other at fraction ``step / gap``. Registration is far too slow to run
per batch on a CPU, so :func:`build_guides` computes every (first, gap, step) of every stack
once, encodes it with the frozen autoencoder and caches the latents beside the stack latents.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from calid.train.latents import GAPS, LatentStack, encode_images


@lru_cache(maxsize=64)
def guide_rows(count: int, gaps: tuple[int, ...] = GAPS) -> tuple[tuple[int, int, int], ...]:
    """Every (first, gap, step) a stack of ``count`` slices can be trained on, in cache order."""
    return tuple((first, gap, step) for gap in gaps for first in range(count - gap) for step in range(1, gap))


def guide_row(count: int, first: int, target: int, gap: int) -> int:
    """Row of the cached guide for acquired ``first``, ``first + gap`` and ``target`` between them."""
    return _row_index(count)[(first, gap, target - first)]


@lru_cache(maxsize=64)
def _row_index(count: int) -> dict[tuple[int, int, int], int]:
    return {row: i for i, row in enumerate(guide_rows(count))}


def stack_guides(slices: np.ndarray, spacing_xy: tuple[float, float]) -> np.ndarray:
    """Registration estimates (rows, Y, X) float32 of a normalised stack, one per :func:`guide_rows` row."""
    from calid.methods.registration import morph_between

    slices = slices.astype(np.float32)
    rows = guide_rows(slices.shape[0])
    out = np.empty((len(rows), *slices.shape[1:]), np.float32)
    for gap in GAPS:
        fractions = np.arange(1, gap) / gap
        for first in range(slices.shape[0] - gap):
            morphed = morph_between(slices[first], slices[first + gap], fractions, spacing_xy)
            for step in range(1, gap):
                out[_row_index(slices.shape[0])[(first, gap, step)]] = morphed[step - 1]
    return out


def pixel_spacings(data_dirs: list[str], sources: list[str]) -> dict[str, tuple[float, float]]:
    """In-plane spacing (x, y) in mm of every source file (``name#frame``), read from the headers only."""
    import SimpleITK as sitk

    spacings: dict[str, tuple[float, float]] = {}
    for name in {source.split("#")[0] for source in sources}:
        path = next((Path(d) / name for d in data_dirs if (Path(d) / name).is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{name} is in the stack cache but in none of {', '.join(data_dirs)}")
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        spacings[name] = tuple(float(v) for v in reader.GetSpacing()[:2])
    return spacings


def build_guides(autoencoder, stacks, data_dirs: list[str], every_frame: int = 1, on_stack=None) -> list[LatentStack | None]:
    """Guide latents (rows, C, h, w) float16 per stack (``None`` for cine frames skipped by ``every_frame``)."""
    spacing = pixel_spacings(data_dirs, [s.source for s in stacks])
    guides: list[LatentStack | None] = []
    for stack in stacks:
        name, _, frame = stack.source.partition("#")
        if (frame and int(frame) % every_frame) or stack.slices.shape[0] < 3:
            guides.append(None)
        else:
            images = stack_guides(stack.slices, spacing[name])
            guides.append(LatentStack(encode_images(autoencoder, images), stack.slice_spacing, stack.source))
        if on_stack is not None:
            on_stack()
    return guides
