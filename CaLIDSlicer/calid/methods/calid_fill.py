"""The CaLID method behind ``calid.reconstruct(method="calid")``.

Normalise the sparse input, encode every acquired slice, sample the latent of every
missing slice conditioned on its acquired neighbours (all at once), decode, and map
intensities back. Models are found by name (bundled or installed) and kept loaded
for the life of the process, so a cine or a batch of volumes pays the load once.
"""


from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from calid.errors import InputError, ModelError
from calid.methods.detail_transfer import sigma_pixels
from calid.methods.temporal_smoothing import smooth_in_time
from calid.methods.calid_codec import decode_into, encode_slices, linear_blends, motion_guide, registration_guide, zero_outside_view
from calid.methods.calid_settings import (DEFAULT_DECODING, DEFAULT_GUIDE, DEFAULT_GUIDE_BLEND, DEFAULT_GUIDE_DETAIL,
                                          DEFAULT_GUIDE_DETAIL_MM, DEFAULT_GUIDE_STRENGTH, DEFAULT_MODEL, DEFAULT_TEMPORAL_MODEL, DEFAULT_VIEWS, ROUND_IMAGE_PIXELS, check_decoding, check_guide, check_guide_latents, DEFAULT_GUIDE_LATENTS,
                                          DEFAULT_SHARPEN, DEFAULT_SHARPEN_MM, check_sharpen, DEFAULT_PRECISION,
                                          resolve_device, sampler_settings)
from calid.methods.precision import network_autocast, resolve_precision
from calid.models.preprocess import intensity_scale
from calid.progress import Progress

#: Latent pixels per sample/decode round (a round of gaps is sampled, then decoded straight into the output).
ROUND_LATENT_PIXELS = 8 * ROUND_IMAGE_PIXELS // 16


def _model_dir(model: str | Path | None, mode: str = "3d") -> Path:
    from calid.models.search import find_model

    if model is None:
        return find_model(DEFAULT_TEMPORAL_MODEL if mode == "2dt" else DEFAULT_MODEL)
    path = Path(model)
    if path.is_dir():
        return path
    return find_model(str(model))


@lru_cache(maxsize=4)
def load_models(model_dir: Path, device: str):
    """(denoiser, autoencoder) in eval mode; the autoencoder is the one named in the denoiser's config."""
    from calid.models.identity import load_identified
    from calid.models.search import find_model

    denoiser, config = load_identified(model_dir, device)
    vae_name = config.extra.get("autoencoder")
    if config.kind != "denoiser" or not vae_name:
        raise ModelError(f"{model_dir} is a {config.kind!r} model; the calid method needs a denoiser that names its autoencoder")
    sibling = model_dir.parent / vae_name
    autoencoder, _ = load_identified(sibling if (sibling / "config.json").is_file() else find_model(vae_name), device)
    reads, makes = getattr(denoiser, "latent_channels", None), getattr(autoencoder, "latent_channels", None)
    if reads is not None and makes is not None and reads != makes:
        raise ModelError(f"{model_dir} reads {reads} latent channels but its autoencoder {vae_name} makes {makes}: "
                         f"install the autoencoder it was trained with ('calid models fetch {vae_name}')")
    from calid.models.accel import for_device  # in place: the identities recorded above stay valid

    return for_device(denoiser, device), for_device(autoencoder, device)


@lru_cache(maxsize=2)
def load_motion_guide(device: str):
    """The installed learned motion guide (:data:`calid.models.motion.DEFAULT_MODEL`) in eval mode, loaded once per device."""
    from calid.models.identity import load_identified
    from calid.models.motion import DEFAULT_MODEL as MOTION_MODEL
    from calid.models.search import find_model

    model, config = load_identified(find_model(MOTION_MODEL), device)
    if config.kind != "motion":
        raise ModelError(f"{MOTION_MODEL} is a {config.kind!r} model, not the motion guide; reinstall it with "
                         f"'calid models fetch {MOTION_MODEL}' or use --guide registration")
    return model.eval()


def sample_missing(denoiser, stacks, factor: int, gap_mm: float, settings, seed: int | torch.Generator, progress: Progress,
                   gaps: range | None = None, temporal: bool = False, guide=None, precision: str = DEFAULT_PRECISION):
    """The timed "sample" stage: missing slices of ``stacks`` (T, Z, C, h, w), whatever space C, h, w live in.

    Shared with the bench's pixel-space comparator so both are sampled by the same code
    (same ``precision``, same chunking, same noise). ``seed`` may be a generator that
    successive chunks of ``gaps`` share.
    """
    import torch

    from calid.methods.sampling import chunk_count, fill_latents

    frames, count = stacks.shape[:2]
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    gap_count = len(gaps) if gaps is not None else count - 1
    missing = frames * gap_count * (factor - 1)
    total = chunk_count(missing, factor, settings, frames if temporal else None)
    with torch.no_grad(), network_autocast(stacks.device, precision), progress.stage("sample", total) as stage:
        return fill_latents(denoiser, stacks, factor, gap_mm, settings, generator, stage.advance, gaps, temporal, guide)


def is_temporal(denoiser) -> bool:
    """True for the 2D+T denoiser (it mixes the frames of a cine)."""
    from calid.models.temporal import TemporalSliceDenoiser

    return isinstance(denoiser, TemporalSliceDenoiser)


def gap_chunks(gaps: int, frames: int, factor: int, latent_pixels: int) -> list[range]:
    """Gaps per sample/decode round so that one round holds about ROUND_LATENT_PIXELS latent pixels."""
    per_gap = max(1, frames * (factor - 1) * latent_pixels)
    size = max(1, ROUND_LATENT_PIXELS // per_gap)
    return [range(first, min(first + size, gaps)) for first in range(0, gaps, size)]


def fill(array: np.ndarray, factor: int, spacing: tuple, progress: Progress, **options) -> tuple[np.ndarray, np.ndarray | None]:
    """Dense (T, (Z-1)*factor+1, Y, X) float32 and, for samples > 1, the per-voxel std (else None)."""
    if array.ndim != 4:
        raise InputError(f"array must be (T, Z, Y, X), not shape {array.shape}")
    frames, count, height, width = array.shape
    dense = np.zeros((frames, (count - 1) * factor + 1, height, width), dtype=np.float32)
    dense[:, ::factor] = array
    return dense, fill_into(array, dense, factor, spacing, progress, **options)


def fill_into(
    source: np.ndarray,
    out: np.ndarray,
    factor: int,
    spacing: tuple,
    progress: Progress,
    *,
    steps: int = 10,
    samples: int = 1,
    seed: int = 0,
    device: str = "auto",
    model: str | Path | None = None,
    order: str = "parallel",
    temperature: float | None = None,
    decoding: str = DEFAULT_DECODING,
    mode: str = "3d",
    outside_view: bool = True,
    guide: str = DEFAULT_GUIDE,
    guide_strength: float = DEFAULT_GUIDE_STRENGTH,
    guide_blend: float = DEFAULT_GUIDE_BLEND,
    guide_detail: float = DEFAULT_GUIDE_DETAIL,
    guide_detail_mm: float = DEFAULT_GUIDE_DETAIL_MM,
    views: int = DEFAULT_VIEWS,
    temporal_smoothing: float = 0.0,
    guide_latents: str = DEFAULT_GUIDE_LATENTS,
    sharpen: float = DEFAULT_SHARPEN,
    sharpen_mm: float = DEFAULT_SHARPEN_MM,
    precision: str = DEFAULT_PRECISION,
    used: dict | None = None,
) -> np.ndarray | None:
    """Write the synthesised slices of ``source`` (T, Z, Y, X) into ``out`` (T, (Z-1)*factor+1, Y, X, any dtype).

    Works in rounds of a few gaps (sample, then decode straight into ``out``) so memory
    beyond ``source`` and ``out`` stays bounded whatever the study size. Returns the
    per-voxel std (float32, like ``out``) for samples > 1, else None. ``mode`` "2dt" needs
    the 2D+T model and samples every frame of a missing slice together. ``outside_view``:
    keep pixels zero where both acquired neighbours are exactly zero (see :func:`outside_view_mask`).
    ``guide``/``guide_strength``: where the sampler starts (see :data:`GUIDES`); ``guide_blend``:
    the share of the guide's image estimate in the final image (see :data:`DEFAULT_GUIDE_BLEND`);
    ``guide_detail``/``guide_detail_mm``: the share of the guide's detail finer than a Gaussian of that
    width (mm) that replaces CaLID's (:mod:`calid.methods.detail_transfer`).
    ``views``: in-plane flips/transposes each prediction is averaged over (see :data:`DEFAULT_VIEWS`).
    ``temporal_smoothing``: width in frames of the Gaussian the synthesised slices are smoothed with along time
    (:mod:`calid.methods.temporal_smoothing`; 0 is off; the per-voxel std is left as sampled).
    ``guide_latents``: "encode" the registration guide's images, or "warp" the acquired latents
    (:data:`calid.methods.calid_settings.GUIDE_LATENTS`).
    ``sharpen``/``sharpen_mm``: unsharp mask (amount, Gaussian width in mm) on the synthesised slices, 0 is off.
    ``precision``: the networks' arithmetic, "auto", "float32" or "bfloat16" (:mod:`calid.methods.precision`).
    ``used``: when given, receives the device, the precision and the identities of the models loaded (for the report).
    """
    import torch

    check_decoding(decoding, guide)
    check_guide_latents(guide_latents, guide)
    check_sharpen(sharpen, sharpen_mm)
    if source.ndim != 4:
        raise InputError(f"array must be (T, Z, Y, X), not shape {source.shape}")
    frames, count, height, width = source.shape
    if factor == 1 or count < 2:
        return None
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    with progress.stage("load"):
        denoiser, autoencoder = load_models(_model_dir(model, mode).resolve(), device)
        motion = load_motion_guide(device) if guide == "motion" else None
    if used is not None:
        from calid.models.identity import identity_of

        used.update(device=device, precision=precision, models=[i for i in (identity_of(denoiser), identity_of(autoencoder), identity_of(motion)) if i])
    temporal = _check_mode(mode, denoiser, order)
    check_guide(guide, guide_strength, steps, denoiser.num_train_timesteps, guide_blend,  # the loaded model's own schedule
                guide_detail, guide_detail_mm)
    settings = sampler_settings(steps, samples, order, temperature, guide_strength if guide != "none" else 1.0, views)
    scale = intensity_scale(source)
    std = np.zeros(out.shape, np.float32) if samples > 1 else None
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad(), network_autocast(device, precision):
        latents = encode_slices(autoencoder, source, scale, device, progress)
        latent_pixels = latents.shape[-1] * latents.shape[-2]
        for gaps in gap_chunks(count - 1, frames, factor, latent_pixels):
            start_latents, guide_images = (None, None) if guide == "none" else \
                motion_guide(autoencoder, motion, source, scale, factor, gaps, device, progress) if guide == "motion" else \
                registration_guide(autoencoder, source, scale, factor, spacing, gaps, device, progress,
                                   latents if guide_latents == "warp" else None)
            sampled, targets = sample_missing(denoiser, latents, factor, float(spacing[2]), settings, generator, progress,
                                              gaps, temporal, start_latents, precision=precision)
            blends = linear_blends(latents, source, scale, factor, denoiser.neighbours, gaps) if decoding == "residual" else \
                (start_latents, guide_images) if decoding == "guide-residual" else None
            mixing = guide_images is not None and (guide_blend > 0 or guide_detail > 0)
            mix = (guide_images, guide_blend, guide_detail, sigma_pixels(guide_detail_mm, spacing[:2])) if mixing else None
            sharpening = (sharpen, sigma_pixels(sharpen_mm, spacing[:2])) if sharpen > 0 else None
            decode_into(out, std, autoencoder, sampled, targets, scale, blends, progress, mix, sharpening)
            smooth_in_time(out, targets, temporal_smoothing)
            if outside_view:
                zero_outside_view(out, std, source, targets, factor)
    return std


def _check_mode(mode: str, denoiser, order: str) -> bool:
    """True for 2D+T sampling; refuse a model that does not fit the mode."""
    temporal = is_temporal(denoiser)
    if mode not in ("3d", "2dt"):
        raise InputError(f"mode must be '3d' or '2dt', not {mode!r}")
    if temporal != (mode == "2dt"):
        want = "the 2D+T model (calid-denoiser-2dt-acdc)" if mode == "2dt" else "a 3D denoiser (calid-denoiser-acdc)"
        raise ModelError(f"mode {mode!r} needs {want}; choose a matching model or mode")
    if temporal and order != "parallel":
        raise InputError("order 'autoregressive' is for 3D mode; 2D+T fills all missing slices in parallel")
    return temporal
