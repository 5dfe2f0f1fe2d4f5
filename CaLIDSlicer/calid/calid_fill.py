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

DEFAULT_MODEL = "calid-denoiser-acdc"
#: Initial-noise scale. One sample: 0, the deterministic estimate (best PSNR/SSIM on the
#: validation patients). Several samples: 1, true diffusion samples whose spread is the uncertainty.
SINGLE_SAMPLE_TEMPERATURE = 0.0
MULTI_SAMPLE_TEMPERATURE = 1.0
DEFAULT_ETA = 0.0
#: "residual": linear image blend + decode(sampled) - decode(linear latent blend), so the
#: autoencoder's own reconstruction error cancels; "direct": decode(sampled) alone.
DEFAULT_DECODING = "direct"
DECODINGS = ("residual", "direct")
#: Slices per network call; bounds memory on large inputs.
CHUNK = 32


def _model_dir(model: str | Path | None) -> Path:
    from calid.weights import find_model

    if model is None:
        return find_model(DEFAULT_MODEL)
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
    return denoiser, autoencoder


def _autocast(device: str):
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


def sampler_settings(steps: int, samples: int = 1, order: str = "parallel", temperature: float | None = None):
    """The sampler settings of the calid method (also used by the bench's pixel-space comparator)."""
    from calid.sampling import SamplerSettings

    if temperature is None:
        temperature = SINGLE_SAMPLE_TEMPERATURE if samples == 1 else MULTI_SAMPLE_TEMPERATURE
    return SamplerSettings(steps=steps, samples=samples, eta=DEFAULT_ETA, temperature=temperature, chunk=CHUNK, order=order)


def sample_missing(denoiser, stacks, factor: int, gap_mm: float, settings, seed: int, progress: Progress):
    """The timed "sample" stage: every missing slice of ``stacks`` (T, Z, C, h, w), whatever space C, h, w live in.

    Shared with the bench's pixel-space comparator so both are sampled by the same code
    (same autocast on CUDA, same chunking, same noise).
    """
    import torch

    from calid.sampling import chunk_count, fill_latents

    frames, count = stacks.shape[:2]
    generator = torch.Generator().manual_seed(int(seed))
    missing = frames * (count - 1) * (factor - 1)
    with torch.no_grad(), _autocast(stacks.device.type), progress.stage("sample", chunk_count(missing, factor, settings)) as stage:
        return fill_latents(denoiser, stacks, factor, gap_mm, settings, generator, stage.advance)


def fill(
    array: np.ndarray,
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
) -> tuple[np.ndarray, np.ndarray | None]:
    """Dense (T, (Z-1)*factor+1, Y, X) float32 and, for samples > 1, the per-voxel std (else None)."""
    import torch

    if decoding not in DECODINGS:
        raise InputError(f"decoding must be one of {', '.join(DECODINGS)}, not {decoding!r}")
    if array.ndim != 4:
        raise InputError(f"array must be (T, Z, Y, X), not shape {array.shape}")
    frames, count, height, width = array.shape
    settings = sampler_settings(steps, samples, order, temperature)
    dense = np.zeros((frames, (count - 1) * factor + 1, height, width), dtype=np.float32)
    dense[:, ::factor] = array
    if factor == 1 or count < 2:
        return dense, None
    device = resolve_device(device)
    denoiser, autoencoder = load_models(_model_dir(model).resolve(), device)
    scale = intensity_scale(array)
    images = torch.from_numpy(normalise(array, scale)).reshape(frames * count, 1, height, width)
    with torch.no_grad(), _autocast(device):
        with progress.stage("encode", -(-images.shape[0] // CHUNK)) as stage:
            latents = []
            for part in images.split(CHUNK):
                latents.append(autoencoder.encode(part.to(device)).float())
                stage.advance()
        latents = torch.cat(latents).unflatten(0, (frames, count))
        missing = (count - 1) * (factor - 1)
        sampled, targets = sample_missing(denoiser, latents, factor, float(spacing[2]), settings, seed, progress)
        flat = sampled.flatten(0, 2)  # (S*T*M, C, h, w)
        if decoding == "residual":
            blend_latents, blend_images = linear_blends(latents, images.reshape(frames, count, height, width), factor, denoiser.neighbours)
            flat = torch.cat([flat, blend_latents.flatten(0, 1).to(flat.device)])
        with progress.stage("decode", -(-flat.shape[0] // CHUNK)) as stage:
            decoded = []
            for part in flat.split(CHUNK):
                decoded.append(autoencoder.decode(part, (height, width)).float().cpu())
                stage.advance()
    decoded = torch.cat(decoded)[:, 0]
    made = decoded[: samples * frames * missing].reshape(samples, frames, missing, height, width)
    if decoding == "residual":
        made = made - decoded[samples * frames * missing :].reshape(frames, missing, height, width) + blend_images
    made = made.numpy()
    made = denormalise(made, scale)
    dense[:, targets] = made.mean(axis=0)
    if samples == 1:
        return dense, None
    std = np.zeros_like(dense)
    std[:, targets] = made.std(axis=0)
    return dense, std


def linear_blends(latents, images, factor: int, neighbours: int):
    """(1 - a) * prev + a * next for every missing slice, of latents (T, Z, C, h, w) and images (T, Z, Y, X)."""
    import torch

    from calid.sampling import gap_requests

    contexts, fractions, _ = gap_requests(latents.shape[1], factor, neighbours)
    before = [c[neighbours - 1] for c in contexts]
    after = [c[neighbours] for c in contexts]
    weight = torch.tensor(fractions, dtype=torch.float32)

    def blend(values):
        w = weight.to(values.device).view(1, -1, *([1] * (values.ndim - 2)))
        return values[:, before] * (1 - w) + values[:, after] * w

    return blend(latents), blend(images)
