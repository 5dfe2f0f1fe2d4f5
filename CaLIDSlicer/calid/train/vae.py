"""Autoencoder training: L1 + image-gradient L1 + a small KL term on random slice crops.

The gradient term keeps edges (myocardial borders) sharp, which plain L1 blurs; the
KL weight is tiny so latents stay informative while remaining smooth enough to diffuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calid.models.preprocess import CLIP_MAX
from calid.train.augment import crop_slices, dihedral, intensity_jitter
from calid.train.data import Stack


@dataclass(frozen=True)
class VaeLossWeights:
    gradient: float = 0.5
    kl: float = 1e-6


def slice_batch(stacks: list[Stack], batch: int, crop: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, 1, crop, crop): random slices of random stacks, cropped near the centre, augmented."""
    images = []
    for _ in range(batch):
        stack = stacks[int(torch.randint(len(stacks), (1,), generator=generator))]
        index = int(torch.randint(stack.slices.shape[0], (1,), generator=generator))
        image = crop_slices(stack.slices[index], crop, generator)
        image = intensity_jitter(dihedral(image, generator), generator)
        images.append(image.clamp(0, CLIP_MAX))
    return torch.stack(images)[:, None]


def image_gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return images[..., 1:, :] - images[..., :-1, :], images[..., :, 1:] - images[..., :, :-1]


def vae_loss(model: torch.nn.Module, images: torch.Tensor, weights: VaeLossWeights, sample: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    recon, mean, sigma = model(images, sample)
    l1 = (recon - images).abs().mean()
    (dy, dx), (ry, rx) = image_gradients(images), image_gradients(recon)
    gradient = (dy - ry).abs().mean() + (dx - rx).abs().mean()
    variance = sigma.pow(2).clamp_min(1e-12)
    kl = 0.5 * (mean.pow(2) + variance - variance.log() - 1).sum(dim=(1, 2, 3)).mean()
    loss = l1 + weights.gradient * gradient + weights.kl * kl
    mse = float(((recon.detach().clamp(0, CLIP_MAX) - images) ** 2).mean())
    return loss, {"l1": round(float(l1.detach()), 5), "kl": round(float(kl.detach()), 1), "psnr": round(psnr(mse), 2)}


def psnr(mse: float, data_range: float = 1.0) -> float:
    """PSNR in dB with 1.0 = the 99.5th percentile (the normalisation)."""
    return float(10 * np.log10(data_range**2 / max(mse, 1e-12)))


@torch.no_grad()
def latent_scale_of(model: torch.nn.Module, stacks: list[Stack], count: int = 128, crop: int = 64, seed: int = 0) -> float:
    """1 / std of the latent means over real slices: brings latents to unit variance for diffusion."""
    generator = torch.Generator().manual_seed(seed)
    images = slice_batch(stacks, count, crop, generator)
    latents = torch.cat([model.net.encode(chunk)[0] for chunk in images.split(32)])
    return float(1.0 / latents.std().clamp_min(1e-6))


@torch.no_grad()
def validation_psnr(model: torch.nn.Module, stacks: list[Stack], count: int = 32, crop: int = 96, seed: int = 1) -> float:
    """Mean PSNR of reconstructions of fixed random validation crops (no augmentation effect on the seed)."""
    generator = torch.Generator().manual_seed(seed)
    images = slice_batch(stacks, count, crop, generator)
    scores = []
    for chunk in images.split(16):
        recon = model.decode(model.encode(chunk), chunk.shape[-2:]).clamp(0, CLIP_MAX)
        scores += [psnr(float(((r - c) ** 2).mean())) for r, c in zip(recon, chunk)]
    return float(np.mean(scores))


def save_run_model(model: torch.nn.Module, kwargs: dict, stacks: list[Stack], out: Path, card: str) -> Path:
    """Export to a calid model directory with the latent scale measured on training slices."""
    from calid.models.vae import SliceAutoencoder
    from calid.models.format import ModelConfig, save_model

    model.eval()
    scale = latent_scale_of(model, stacks)
    kwargs = {**kwargs, "latent_scale": scale}
    exported = SliceAutoencoder(**kwargs)
    exported.load_state_dict(model.state_dict())
    config = ModelConfig(name="calid-vae-acdc", version="0.1.0", kind="vae", architecture="calid-vae", kwargs=kwargs)
    return save_model(exported, config, out, card, overwrite=True)
