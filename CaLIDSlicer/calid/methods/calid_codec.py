"""The image side of the calid method: acquired slices into latents, sampled latents back into the output.

Also the image-space estimates the fill can mix in: the guide (neighbours morphed into each other
by demons registration or by the learned motion guide, then encoded) and the linear blend of the
``residual`` decoding.
Every step works one chunk at a time (:func:`decode_chunk`) so memory stays bounded.
"""

from __future__ import annotations

import numpy as np

from calid.methods.calid_settings import CHUNK, ROUND_IMAGE_PIXELS
from calid.methods.output_dtype import to_output_dtype
from calid.models.preprocess import denormalise, normalise
from calid.progress import Progress


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


def decode_into(out, std, autoencoder, sampled, targets, scale, blends, progress: Progress, mix=None,
                sharpening=None) -> None:
    """Decode sampled latents (S, T, M, C, h, w) and write mean (and std) over S into out[:, targets].

    ``mix`` (guide images (T, M, Y, X) normalised, blend w, detail d, sigma in pixels (Y, X)): the
    written images are (1 - w) * decoded + w * guide (see :data:`DEFAULT_GUIDE_BLEND`), then a share d
    of their fine band replaced by the guide's (:func:`calid.methods.detail_transfer.mix_guide`).
    ``sharpening`` (amount, sigma in pixels (Y, X)): an unsharp mask on the result
    (:func:`calid.methods.detail_transfer.sharpen`).
    """
    import torch

    from calid.methods.detail_transfer import mix_guide, sharpen

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
                mix_images, weight, detail, sigma_px = mix
                images = mix_guide(images, mix_images[ts, ms], weight, detail, sigma_px)
            if sharpening is not None:
                images = sharpen(images, *sharpening)
            made = denormalise(images.numpy(), scale)
            columns = [targets[m] for m in ms]
            out[ts, columns] = to_output_dtype(made.mean(axis=0), out.dtype)
            if std is not None:
                std[ts, columns] = made.std(axis=0)
            stage.advance()


def registration_guide(autoencoder, source: np.ndarray, scale: float, factor: int, spacing: tuple, gaps: range, device: str,
                       progress: Progress, latents=None):
    """Latents (T, M, C, h, w) and normalised images (T, M, Y, X) of the registration-based estimate of every missing slice of ``gaps``.

    The same morphing as the registration baseline (:func:`calid.methods.registration.morph_between`),
    in the order :func:`calid.methods.sampling.gap_requests` lists the missing slices. With the acquired
    slices' ``latents`` (T, Z, C, h, w) the guide's latents are those latents moved by the same motion
    (:mod:`calid.methods.latent_warp`, no encoder call); without, the morphed images are encoded.
    """
    import torch

    from calid.methods.latent_warp import morph_latents
    from calid.methods.registration import symmetric_motion, warp_between

    frames, _, height, width = source.shape
    fractions = np.arange(1, factor) / factor
    spacing_xy = (float(spacing[0]), float(spacing[1]))
    images = np.empty((frames, len(gaps) * (factor - 1), height, width), np.float32)
    warped = [[None] * len(gaps) for _ in range(frames)] if latents is not None else None
    chunks = 0 if latents is not None else -(-images.shape[0] * images.shape[1] // decode_chunk(height, width))
    # one stage for morphing and encoding, so the report's stage times add up to the run's
    with progress.stage("register", frames * len(gaps) + chunks) as stage:
        for t in range(frames):
            for i, gap in enumerate(gaps):
                prev, next_ = source[t, gap].astype(np.float32), source[t, gap + 1].astype(np.float32)
                motion = symmetric_motion(prev, next_, spacing_xy)
                images[t, i * (factor - 1) : (i + 1) * (factor - 1)] = normalise(
                    warp_between(prev, next_, motion, fractions, spacing_xy), scale)
                if warped is not None:
                    warped[t][i] = morph_latents(latents[t, gap], latents[t, gap + 1], motion, fractions, spacing_xy,
                                                 autoencoder.downsampling)
                stage.advance()
        if warped is None:
            return _encode_guide(autoencoder, images, device, stage)
        guide = torch.stack([torch.cat(row) for row in warped])
        return guide, torch.from_numpy(images)


def motion_guide(autoencoder, motion, source: np.ndarray, scale: float, factor: int, gaps: range, device: str,
                 progress: Progress):
    """Like :func:`registration_guide`, with the learned motion guide (:mod:`calid.models.motion`) in place of demons.

    Every pair of neighbours of every frame goes through the network in batches, at all
    fractions at once, on ``device`` in float32 (flows in bfloat16 would be off by a quarter pixel).
    """
    from calid.methods.precision import full_precision
    from calid.models.motion import interpolate

    frames, _, height, width = source.shape
    fractions = np.arange(1, factor) / factor
    first = np.asarray(gaps, dtype=np.intp)
    prev = source[:, first].reshape(-1, height, width).astype(np.float32)
    next_ = source[:, first + 1].reshape(-1, height, width).astype(np.float32)
    chunks = -(-prev.shape[0] * (factor - 1) // decode_chunk(height, width))
    with progress.stage("motion guide", 1 + chunks) as stage:
        with full_precision(device):
            warped = interpolate(motion, prev, next_, fractions, device=device)  # (T * G, F, Y, X), pair-major
        images = normalise(warped.reshape(frames, len(gaps) * (factor - 1), height, width), scale).astype(np.float32)
        stage.advance()
        return _encode_guide(autoencoder, images, device, stage)


def _encode_guide(autoencoder, images: np.ndarray, device: str, stage):
    """(latents (T, M, C, h, w), images as a tensor) of guide images (T, M, Y, X), one decode-sized chunk at a time."""
    import torch

    flat = images.reshape(-1, *images.shape[-2:])
    chunk = decode_chunk(*images.shape[-2:])
    latents = []
    for first in range(0, flat.shape[0], chunk):
        latents.append(autoencoder.encode(torch.from_numpy(flat[first : first + chunk])[:, None].to(device)).float())
        stage.advance()
    return torch.cat(latents).unflatten(0, images.shape[:2]), torch.from_numpy(images)


def linear_blends(latents, source: np.ndarray, scale: float, factor: int, neighbours: int, gaps: range | None = None):
    """(1 - a) * prev + a * next for every missing slice (of ``gaps``): latents (T, M, C, h, w) and normalised images (T, M, Y, X)."""
    import torch

    from calid.methods.sampling import gap_requests

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
