"""Triplets for the motion guide: two acquired slices and the real slice between them.

From every normalised training stack (ACDC ED/ES volumes and every frame of the ACDC
cines, :func:`calid.train.data.cached_stacks`): slices ``z`` and ``z + g`` (gap ``g`` in
2..4, 2 most often, as at x2) and a target ``z + k`` at fraction ``a = k / g``. Each
example is cropped near the image centre (where the heart is), padded with edge values
to the crop size (cines are 100 x 95), turned/flipped, maybe swapped (prev <-> next,
a -> 1 - a) and given a random scale and gamma, the same for all three slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from calid.train.augment import centred_crop_box, dihedral

#: Gaps between the two acquired slices, and how often each is drawn.
GAPS = (2, 3, 4)
GAP_WEIGHTS = (0.5, 0.25, 0.25)


@dataclass
class TripletBatch:
    """(B, 1, S, S) prev / next / target, fractions (B,), and where the pixels are real (B, 1, S, S)."""

    prev: torch.Tensor
    next: torch.Tensor
    target: torch.Tensor
    a: torch.Tensor
    valid: torch.Tensor


class TripletSampler:
    """Random triplets from stacks in memory; ``cine_share`` of them from cine frames."""

    def __init__(self, volumes: list[np.ndarray], cines: list[np.ndarray], crop: int = 128,
                 cine_share: float = 0.5, seed: int = 0) -> None:
        self.volumes = [v for v in volumes if v.shape[0] >= 3]
        self.cines = [c for c in cines if c.shape[0] >= 3]
        if not self.volumes and not self.cines:
            raise ValueError("no stack has the 3 slices a triplet needs")
        self.crop = int(crop)
        self.cine_share = cine_share if self.cines and self.volumes else (1.0 if self.cines else 0.0)
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def _stack(self) -> np.ndarray:
        pool = self.cines if self.rng.random() < self.cine_share else self.volumes
        return pool[self.rng.integers(len(pool))]

    def example(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(3, S, S) prev/target/next, (1, S, S) valid mask, fraction a."""
        stack = self._stack()
        gaps = [g for g in GAPS if g < stack.shape[0]]
        weights = np.array([GAP_WEIGHTS[GAPS.index(g)] for g in gaps])
        gap = int(self.rng.choice(gaps, p=weights / weights.sum()))
        first = int(self.rng.integers(stack.shape[0] - gap))
        step = int(self.rng.integers(1, gap))
        images = stack[[first, first + step, first + gap]]
        height, width = images.shape[-2:]
        top, left = centred_crop_box(height, width, self.crop, self.generator)
        patch = torch.from_numpy(np.ascontiguousarray(images[:, top : top + self.crop, left : left + self.crop],
                                                      dtype=np.float32))
        valid = torch.ones(1, *patch.shape[-2:])
        pad = (0, self.crop - patch.shape[-1], 0, self.crop - patch.shape[-2])
        if pad[1] or pad[3]:
            patch = F.pad(patch[None], pad, mode="replicate")[0]
            valid = F.pad(valid, pad)
        both = dihedral(torch.cat([patch, valid]), self.generator)
        patch, valid = both[:3], both[3:]
        a = step / gap
        if self.rng.random() < 0.5:
            patch, a = patch.flip(0), 1.0 - a
        scale = float(self.rng.uniform(0.8, 1.2))
        gamma = float(np.exp(self.rng.uniform(np.log(0.7), np.log(1.4))))
        patch = scale * patch.clamp_min(0) ** gamma
        return patch, valid, a

    def batch(self, size: int) -> TripletBatch:
        examples = [self.example() for _ in range(size)]
        images = torch.stack([e[0] for e in examples])
        return TripletBatch(images[:, 0:1], images[:, 2:3], images[:, 1:2],
                            torch.tensor([e[2] for e in examples], dtype=torch.float32),
                            torch.stack([e[1] for e in examples]))


def split_stacks(stacks) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(ACDC ED/ES volumes, cine frames) from :class:`calid.train.data.Stack` items (by source name)."""
    volumes = [s.slices for s in stacks if "_4d" not in s.source]
    cines = [s.slices for s in stacks if "_4d" in s.source]
    return volumes, cines
