"""Pixel-space diffusion interpolation for ``calid bench`` only: an UNTRAINED timing comparator.

The CaLID paper's headline is that interpolating in latent space is much faster than
diffusion on the images themselves. To measure that ratio here, this builds the very
denoiser class of the calid method with the same channel widths and conditioning, but on
1-channel image slices instead of 4-channel latents (no encode/decode), and samples it
with the same sampler code. Its weights are random (seeded): its run time is meaningful,
its images are not, so it is not a method of ``calid.reconstruct`` and its quality is never reported.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from calid.progress import Progress
from calid.io.volume import Volume

METHOD = "pixel-diffusion"
LABEL = "pixel-diffusion (untrained, timing only)"
NOTE = ("UNTRAINED random weights: same denoiser class, widths and sampler as calid but on image slices; "
        "run time only, its images are meaningless and its quality is never reported")


@lru_cache(maxsize=2)
def pixel_denoiser(device: str, seed: int = 0):
    """The calid denoiser's architecture (from the bundled model's config) on 1-channel images, seeded random weights."""
    import torch

    from calid.methods.calid_settings import DEFAULT_MODEL
    from calid.models.denoiser import SliceDenoiser
    from calid.models.format import read_config
    from calid.models.search import find_model

    kwargs = {**read_config(find_model(DEFAULT_MODEL)).kwargs, "latent_channels": 1}
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG as it was
        torch.manual_seed(seed)
        from calid.models.accel import for_device

        return for_device(SliceDenoiser(**kwargs).to(device).eval(), device)  # the same CUDA layout as calid's


def fill_pixels(array: np.ndarray, factor: int, spacing: tuple, progress: Progress, *, steps: int,
                seed: int = 0, device: str = "cpu", precision: str = "auto") -> np.ndarray:
    """Dense (T, (Z-1)*factor+1, Y, X) float32 from (T, Z, Y, X), missing slices sampled in image space."""
    import torch

    from calid.methods.calid_fill import sample_missing

    from calid.methods.calid_settings import sampler_settings
    from calid.models.preprocess import denormalise, intensity_scale, normalise

    frames, count, height, width = array.shape
    dense = np.zeros((frames, (count - 1) * factor + 1, height, width), dtype=np.float32)
    dense[:, ::factor] = array
    scale = intensity_scale(array)
    images = torch.from_numpy(normalise(array, scale)).unsqueeze(2).to(device)  # (T, Z, 1, Y, X)
    sampled, targets = sample_missing(pixel_denoiser(device, seed), images, factor, float(spacing[2]),
                                      sampler_settings(steps), seed, progress, precision=precision)
    dense[:, targets] = denormalise(sampled[0, :, :, 0].float().cpu().numpy(), scale)
    return dense


def reconstruct_pixels(volume: Volume, factor: int, progress: Progress, *, steps: int, seed: int = 0,
                       device: str = "cpu", precision: str = "auto") -> Volume:
    """The dense volume on the same grid as ``calid.reconstruct`` (acquired slices copied back), for timing."""
    from calid.methods.output_dtype import to_output_dtype

    source = volume.array if volume.is_cine else volume.array[None]
    dense = fill_pixels(source.astype(np.float32), factor, volume.spacing, progress, steps=steps, seed=seed, device=device,
                        precision=precision)
    dense = to_output_dtype(dense, source.dtype)
    dense[:, ::factor] = source
    synthesized = tuple(i for i in range(dense.shape[1]) if i % factor)
    return volume.replace(array=dense if volume.is_cine else dense[0], synthesized=synthesized,
                          **volume.dense_geometry(factor))
