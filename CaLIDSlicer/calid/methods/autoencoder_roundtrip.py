"""The autoencoder's round trip (encode then decode every slice): the ceiling on what CaLID can draw.

Every slice CaLID synthesises comes out of the autoencoder's decoder, so detail the round trip
loses is lost before sampling begins. ``calid evaluate --methods autoencoder`` scores this round
trip of the *real* slices with the same protocol and heart box as the interpolation methods,
which makes the gap between "what the decoder can draw" and "what CaLID drew" one table row.
It is a diagnostic, not a reconstruction method: it needs the slices it pretends to rebuild.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from calid.io.volume import Volume
from calid.progress import Progress, as_progress

#: Name of the diagnostic in ``calid evaluate --methods``.
METHOD = "autoencoder"


def load_autoencoder(denoiser: str | Path | None = None, device: str = "cpu"):
    """(autoencoder in eval mode, its identity): the VAE the CaLID denoiser ``denoiser`` (default: the bundled 3D one) names."""
    from calid.methods.calid_fill import _model_dir, load_models
    from calid.models.identity import identity_of

    _, autoencoder = load_models(_model_dir(denoiser).resolve(), device)
    return autoencoder, identity_of(autoencoder)


def round_trip(array: np.ndarray, autoencoder, device: str = "cpu", progress: Progress | None = None) -> np.ndarray:
    """decode(encode(slice)) of every slice of ``array`` (T, Z, Y, X), float32, in the input's intensity units.

    Intensities are normalised exactly as the calid method normalises its input (one scale for the
    whole array), so the numbers match what CaLID's decoder sees.
    """
    import torch

    from calid.methods.calid_codec import decode_chunk, encode_slices
    from calid.models.preprocess import denormalise, intensity_scale

    if array.ndim != 4:
        raise ValueError(f"array must be (T, Z, Y, X), not shape {array.shape}")
    progress = as_progress(progress)
    frames, count, height, width = array.shape
    scale = intensity_scale(array)
    out = np.empty(array.shape, np.float32)
    with torch.no_grad():
        latents = encode_slices(autoencoder, array, scale, device, progress).flatten(0, 1)
        chunk = decode_chunk(height, width)
        flat = out.reshape(frames * count, height, width)
        with progress.stage("decode", -(-latents.shape[0] // chunk)) as stage:
            for first in range(0, latents.shape[0], chunk):
                images = autoencoder.decode(latents[first : first + chunk], (height, width)).float().cpu()[:, 0]
                flat[first : first + chunk] = denormalise(images.numpy(), scale)
                stage.advance()
    return out


def round_trip_volume(volume: Volume, device: str = "cpu", denoiser: str | Path | None = None,
                      progress: Progress | None = None) -> tuple[Volume, dict | None, float, str]:
    """(the round-tripped volume, every slice marked synthesised; the autoencoder's identity; seconds; the device used)."""
    from calid.methods.calid_settings import resolve_device

    device = resolve_device(device)
    autoencoder, identity = load_autoencoder(denoiser, device)
    started = time.perf_counter()
    frames = volume.array.reshape(-1, *volume.array.shape[-3:])
    decoded = round_trip(frames, autoencoder, device, progress).reshape(volume.array.shape)
    seconds = time.perf_counter() - started
    return volume.replace(array=decoded, synthesized=tuple(range(volume.n_slices))), identity, seconds, device


def round_trip_result(volume: Volume, options: dict, progress: Progress | None = None):
    """The round trip as a :class:`~calid.methods.reconstruction.ReconstructionResult`, so evaluation scores it like a method.

    ``options``: the evaluation's options; ``device`` and ``model`` (the CaLID denoiser whose
    autoencoder to use) are read, the sampler's are ignored (there is no sampling).
    """
    from calid.methods.reconstruction import ReconstructionResult

    decoded, identity, seconds, device = round_trip_volume(volume, options.get("device") or "auto", options.get("model"), progress)
    return ReconstructionResult(volume=decoded, method=METHOD, factor=1, seconds=seconds, stage_seconds={"round trip": seconds},
                                models=(identity,) if identity else (), device=device)
