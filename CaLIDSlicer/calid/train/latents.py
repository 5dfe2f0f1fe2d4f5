"""Training stacks as latents: encoded once by the frozen autoencoder, cached, and the gaps examples are drawn with.

Shared by the denoiser's training examples and the registration guides cached beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calid.train.data import Stack, load_array_list, save_array_list

#: Acquired gaps (in slices of the dense stack) and how often each is drawn; 2 is the held-out-slice case.
GAPS = (2, 3, 4)

GAP_WEIGHTS = (0.5, 0.25, 0.25)



@dataclass(frozen=True)
class LatentStack:
    latents: np.ndarray  # (Z, C, h, w) float16, already scaled by the autoencoder's latent scale
    slice_spacing: float
    source: str



@torch.no_grad()
def encode_images(autoencoder: torch.nn.Module, slices: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Latents (N, C, h, w) float16 of normalised slices (N, Y, X), through the frozen encoder in chunks."""
    images = torch.from_numpy(slices.astype(np.float32))[:, None]
    return torch.cat([autoencoder.encode(part) for part in images.split(chunk)]).numpy().astype(np.float16)



def encode_stacks(autoencoder: torch.nn.Module, stacks: list[Stack], chunk: int = 16) -> list[LatentStack]:
    """Every slice of every stack through the frozen encoder (full size, padded)."""
    encoded = []
    for stack in stacks:
        encoded.append(LatentStack(encode_images(autoencoder, stack.slices, chunk), stack.slice_spacing, stack.source))
    return encoded



def save_latents(path: Path, stacks: list[LatentStack]) -> None:
    save_array_list(path, [s.latents for s in stacks], [s.slice_spacing for s in stacks], [s.source for s in stacks])



def load_latents(path: Path) -> list[LatentStack]:
    return [LatentStack(*item) for item in load_array_list(path)]
