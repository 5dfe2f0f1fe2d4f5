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
from calid.preprocess import denormalise, intensity_scale, normalise
from calid.progress import Progress

#: The bundled CaLID 3D model (denoiser; it names its VAE in its config) and the 2D+T one (cines).
DEFAULT_MODEL = "calid-denoiser-acdc"
DEFAULT_TEMPORAL_MODEL = "calid-denoiser-2dt-acdc"
#: Initial-noise scale. One sample: 0, the deterministic estimate (best PSNR/SSIM on the
#: validation patients). Several samples: 1, true diffusion samples whose spread is the uncertainty.
SINGLE_SAMPLE_TEMPERATURE = 0.0
MULTI_SAMPLE_TEMPERATURE = 1.0
DEFAULT_ETA = 0.0
#: "residual": linear image blend + decode(sampled) - decode(linear latent blend), so the
#: autoencoder's own reconstruction error cancels; "direct": decode(sampled) alone.
DEFAULT_DECODING = "direct"
DECODINGS = ("residual", "direct")
#: "registration": the sampler starts from the latent of the registration-based estimate
#: (neighbours morphed into each other, :mod:`calid.registration`) noised to GUIDE_STRENGTH of
#: the schedule, so the denoiser refines a motion-aware first guess; "none": from pure noise.
#: On the ACDC validation patients (heart box, 2 steps) strength 0.5 gave 18.86 dB / 0.456 SSIM
#: against 18.79 / 0.440 unguided (0.4: 18.69 / 0.457; 0.25: 18.51 / 0.455; docs/results/acdc_val_guide.md).
GUIDES = ("registration", "none")
DEFAULT_GUIDE = "registration"
DEFAULT_GUIDE_STRENGTH = 0.5
#: Share of the registration estimate in each synthesised image when the start is guided:
#: (1 - w) * CaLID + w * registration. The denoiser predicts something close to the conditional
#: mean, smoother than a real slice; the morphed neighbours keep real texture. ACDC val (10 volumes,
#: heart box PSNR / SSIM): w 0 18.86 / 0.456, 0.1 18.88 / 0.459, 0.2 18.88 / 0.460, 0.3 18.87 / 0.460;
#: ACDC cine val (2D+T): w 0 18.28 / 0.482, 0.2 18.38 / 0.487 (docs/results/acdc_val_guide.md).
DEFAULT_GUIDE_BLEND = 0.2
#: In-plane views each denoiser prediction is averaged over (:data:`calid.sampling.VIEWS`), and the
#: counts allowed. 8 views cost 8 times the sampling and gave ACDC val +0.06 dB at equal SSIM (3D) but
#: ACDC cine val -0.003 SSIM (2D+T), so the default is 1.
DEFAULT_VIEWS = 1
VIEW_COUNTS = (1, 2, 4, 8)
#: Slices per network call; bounds memory on large inputs.
CHUNK = 32
#: Image pixels per autoencoder call (CHUNK slices of 256 x 256) and latent pixels per
#: sample/decode round: with these, working memory stays near its 256 x 256 level on any study size.
ROUND_IMAGE_PIXELS = CHUNK * 256 * 256
ROUND_LATENT_PIXELS = 8 * ROUND_IMAGE_PIXELS // 16


def _model_dir(model: str | Path | None, mode: str = "3d") -> Path:
    from calid.weights import find_model

    if model is None:
        return find_model(DEFAULT_TEMPORAL_MODEL if mode == "2dt" else DEFAULT_MODEL)
    path = Path(model)
    if path.is_dir():
        return path
    return find_model(str(model))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but torch sees no CUDA GPU; use device 'cpu' or 'auto'")
    return device


@lru_cache(maxsize=4)
def load_models(model_dir: Path, device: str):
    """(denoiser, autoencoder) in eval mode; the autoencoder is the one named in the denoiser's config."""
    from calid.weights import find_model, load_model

    denoiser, config = load_model(model_dir, device)
    vae_name = config.extra.get("autoencoder")
    if config.kind != "denoiser" or not vae_name:
        raise ModelError(f"{model_dir} is a {config.kind!r} model; the calid method needs a denoiser that names its autoencoder")
    sibling = model_dir.parent / vae_name
    autoencoder, _ = load_model(sibling if (sibling / "config.json").is_file() else find_model(vae_name), device)
    from calid.models.accel import for_device

    return for_device(denoiser, device), for_device(autoencoder, device)


def _autocast(device: str):
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


def sampler_settings(steps: int, samples: int = 1, order: str = "parallel", temperature: float | None = None,
                     strength: float = 1.0, views: int = 1):
    """The sampler settings of the calid method (also used by the bench's pixel-space comparator)."""
    from calid.sampling import SamplerSettings

    if temperature is None:
        temperature = SINGLE_SAMPLE_TEMPERATURE if samples == 1 else MULTI_SAMPLE_TEMPERATURE
    return SamplerSettings(steps=steps, samples=samples, eta=DEFAULT_ETA, temperature=temperature, chunk=CHUNK, order=order,
                           strength=strength, views=views)


def sample_missing(denoiser, stacks, factor: int, gap_mm: float, settings, seed: int | torch.Generator, progress: Progress,
                   gaps: range | None = None, temporal: bool = False, guide=None):
    """The timed "sample" stage: missing slices of ``stacks`` (T, Z, C, h, w), whatever space C, h, w live in.

    Shared with the bench's pixel-space comparator so both are sampled by the same code
    (same autocast on CUDA, same chunking, same noise). ``seed`` may be a generator that
    successive chunks of ``gaps`` share.
    """
    import torch

    from calid.sampling import chunk_count, fill_latents

    frames, count = stacks.shape[:2]
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    gap_count = len(gaps) if gaps is not None else count - 1
    missing = frames * gap_count * (factor - 1)
    total = chunk_count(missing, factor, settings, frames if temporal else None)
    with torch.no_grad(), _autocast(stacks.device.type), progress.stage("sample", total) as stage:
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
    views: int = DEFAULT_VIEWS,
) -> np.ndarray | None:
    """Write the synthesised slices of ``source`` (T, Z, Y, X) into ``out`` (T, (Z-1)*factor+1, Y, X, any dtype).

    Works in rounds of a few gaps (sample, then decode straight into ``out``) so memory
    beyond ``source`` and ``out`` stays bounded whatever the study size. Returns the
    per-voxel std (float32, like ``out``) for samples > 1, else None. ``mode`` "2dt" needs
    the 2D+T model and samples every frame of a missing slice together. ``outside_view``:
    keep pixels zero where both acquired neighbours are exactly zero (see :func:`outside_view_mask`).
    ``guide``/``guide_strength``: where the sampler starts (see :data:`GUIDES`); ``guide_blend``:
    the share of the registration estimate in the final image (see :data:`DEFAULT_GUIDE_BLEND`).
    ``views``: in-plane flips/transposes each prediction is averaged over (see :data:`DEFAULT_VIEWS`).
    """
    import torch

    if decoding not in DECODINGS:
        raise InputError(f"decoding must be one of {', '.join(DECODINGS)}, not {decoding!r}")
    if source.ndim != 4:
        raise InputError(f"array must be (T, Z, Y, X), not shape {source.shape}")
    frames, count, height, width = source.shape
    if factor == 1 or count < 2:
        return None
    device = resolve_device(device)
    denoiser, autoencoder = load_models(_model_dir(model, mode).resolve(), device)
    temporal = _check_mode(mode, denoiser, order)
    check_guide(guide, guide_strength, steps, denoiser.num_train_timesteps, guide_blend)  # the loaded model's own schedule
    settings = sampler_settings(steps, samples, order, temperature, guide_strength if guide != "none" else 1.0, views)
    scale = intensity_scale(source)
    std = np.zeros(out.shape, np.float32) if samples > 1 else None
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad(), _autocast(device):
        latents = encode_slices(autoencoder, source, scale, device, progress)
        latent_pixels = latents.shape[-1] * latents.shape[-2]
        for gaps in gap_chunks(count - 1, frames, factor, latent_pixels):
            guide_latents, guide_images = registration_guide(autoencoder, source, scale, factor, spacing, gaps, device, progress) \
                if guide == "registration" else (None, None)
            sampled, targets = sample_missing(denoiser, latents, factor, float(spacing[2]), settings, generator, progress,
                                              gaps, temporal, guide_latents)
            blends = linear_blends(latents, source, scale, factor, denoiser.neighbours, gaps) if decoding == "residual" else None
            mix = (guide_images, guide_blend) if guide_images is not None and guide_blend > 0 else None
            decode_into(out, std, autoencoder, sampled, targets, scale, blends, progress, mix)
            if outside_view:
                zero_outside_view(out, std, source, targets, factor)
    return std


#: Training timesteps of the bundled denoisers: what options are checked against before a model is loaded.
TRAIN_TIMESTEPS = 1000


def check_guide(guide: str, strength: float, steps: int, timesteps: int = TRAIN_TIMESTEPS, blend: float = 0.0) -> None:
    """Refuse an unknown guide, a blend outside [0, 1), or a strength the few-step schedule of ``timesteps`` cannot start from."""
    from calid.sampling import schedule_stride

    if guide not in GUIDES:
        raise InputError(f"guide must be one of {', '.join(GUIDES)}, not {guide!r}")
    if isinstance(blend, bool) or not isinstance(blend, (int, float)) or not 0 <= blend < 1:
        raise InputError(f"guide blend must be a number in [0, 1) (the registration estimate's share), not {blend!r}")
    if guide == "none":
        return
    try:
        schedule_stride(timesteps, steps, strength)
    except ValueError as error:
        raise InputError(f"guide strength {strength!r} with {steps} steps: {error}") from None


def registration_guide(autoencoder, source: np.ndarray, scale: float, factor: int, spacing: tuple, gaps: range, device: str,
                       progress: Progress):
    """Latents (T, M, C, h, w) and normalised images (T, M, Y, X) of the registration-based estimate of every missing slice of ``gaps``.

    The same morphing as the registration baseline (:func:`calid.registration.morph_between`),
    in the order :func:`calid.sampling.gap_requests` lists the missing slices.
    """
    import torch

    from calid.registration import morph_between

    frames, _, height, width = source.shape
    fractions = np.arange(1, factor) / factor
    images = np.empty((frames, len(gaps) * (factor - 1), height, width), np.float32)
    flat = images.reshape(-1, height, width)
    chunk = decode_chunk(height, width)
    latents = []
    # one stage for morphing and encoding, so the report's stage times add up to the run's
    with progress.stage("register", frames * len(gaps) + -(-flat.shape[0] // chunk)) as stage:
        for t in range(frames):
            for i, gap in enumerate(gaps):
                morphed = morph_between(source[t, gap].astype(np.float32), source[t, gap + 1].astype(np.float32), fractions,
                                        (float(spacing[0]), float(spacing[1])))
                images[t, i * (factor - 1) : (i + 1) * (factor - 1)] = normalise(morphed, scale)
                stage.advance()
        for first in range(0, flat.shape[0], chunk):
            latents.append(autoencoder.encode(torch.from_numpy(flat[first : first + chunk])[:, None].to(device)).float())
            stage.advance()
    return torch.cat(latents).unflatten(0, (frames, images.shape[1])), torch.from_numpy(images)


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


def encode_slices(autoencoder, source: np.ndarray, scale: float, device: str, progress: Progress):
    """Latents (T, Z, C, h, w) of every acquired slice, normalised one chunk at a time."""
    import torch

    frames, count, height, width = source.shape
    flat = source.reshape(frames * count, height, width)
    chunk = decode_chunk(height, width)
    latents = []
    with progress.stage("encode", -(-flat.shape[0] // chunk)) as stage:
        for first in range(0, flat.shape[0], chunk):
            images = torch.from_numpy(normalise(flat[first : first + chunk], scale))[:, None].to(device)
            latents.append(autoencoder.encode(images).float())
            stage.advance()
    return torch.cat(latents).unflatten(0, (frames, count))


def decode_chunk(height: int, width: int) -> int:
    """Images per autoencoder call: CHUNK at 256 x 256, fewer for larger images (bounded activations)."""
    return max(1, min(CHUNK, ROUND_IMAGE_PIXELS // (height * width)))


def decode_into(out, std, autoencoder, sampled, targets, scale, blends, progress: Progress, mix=None) -> None:
    """Decode sampled latents (S, T, M, C, h, w) and write mean (and std) over S into out[:, targets].

    ``mix`` (images (T, M, Y, X) normalised, weight w): the written images are
    (1 - w) * decoded + w * images (the registration estimate, see :data:`DEFAULT_GUIDE_BLEND`).
    """
    import torch

    from calid.reconstruction import to_output_dtype

    samples, frames, missing = sampled.shape[:3]
    height, width = out.shape[-2:]
    pairs = [(t, m) for t in range(frames) for m in range(missing)]
    chunk = max(1, decode_chunk(height, width) // samples)
    with progress.stage("decode", -(-len(pairs) // chunk)) as stage:
        for first in range(0, len(pairs), chunk):
            part = pairs[first : first + chunk]
            ts, ms = [p[0] for p in part], [p[1] for p in part]
            images = autoencoder.decode(sampled[:, ts, ms].flatten(0, 1), (height, width)).float().cpu()[:, 0]
            images = images.unflatten(0, (samples, len(part)))
            if blends is not None:
                blend_latents, blend_images = blends
                images = images - autoencoder.decode(blend_latents[ts, ms], (height, width)).float().cpu()[:, 0] + blend_images[ts, ms]
            if mix is not None:
                mix_images, weight = mix
                images = (1 - weight) * images + weight * mix_images[ts, ms]
            made = denormalise(images.numpy(), scale)
            columns = [targets[m] for m in ms]
            out[ts, columns] = to_output_dtype(made.mean(axis=0), out.dtype)
            if std is not None:
                std[ts, columns] = made.std(axis=0)
            stage.advance()


def outside_view_mask(source: np.ndarray, target: int, factor: int) -> np.ndarray:
    """(T, Y, X) True where both acquired slices around dense slice ``target`` are exactly zero.

    Scanners write exact zeros outside the reconstructed field of view (the corners of a
    circular view, padding bands); no signal can lie there between two such slices either,
    while the autoencoder leaves a faint haze that would make synthesised slices flicker.
    """
    before = target // factor
    return (source[:, before] == 0) & (source[:, min(before + 1, source.shape[1] - 1)] == 0)


def zero_outside_view(out: np.ndarray, std: np.ndarray | None, source: np.ndarray, targets: list[int], factor: int) -> None:
    """Set synthesised pixels (and their std) to zero outside the acquired field of view."""
    for target in targets:
        mask = outside_view_mask(source, target, factor)
        out[:, target][mask] = 0
        if std is not None:
            std[:, target][mask] = 0


def linear_blends(latents, source: np.ndarray, scale: float, factor: int, neighbours: int, gaps: range | None = None):
    """(1 - a) * prev + a * next for every missing slice (of ``gaps``): latents (T, M, C, h, w) and normalised images (T, M, Y, X)."""
    import torch

    from calid.sampling import gap_requests

    contexts, fractions, _ = gap_requests(latents.shape[1], factor, neighbours, gaps)
    before = [c[neighbours - 1] for c in contexts]
    after = [c[neighbours] for c in contexts]
    weight = torch.tensor(fractions, dtype=torch.float32)
    images = torch.from_numpy(normalise(source[:, sorted(set(before + after))], scale))
    position = {index: i for i, index in enumerate(sorted(set(before + after)))}

    def blend(values, first, second):
        w = weight.to(values.device).view(1, -1, *([1] * (values.ndim - 2)))
        return values[:, first] * (1 - w) + values[:, second] * w

    return (blend(latents, before, after),
            blend(images, [position[i] for i in before], [position[i] for i in after]))
