"""Latent denoiser for slice interpolation, conditioned on the neighbouring slices.

Input channels: the noisy latent of the missing slice, the linear blend
``(1 - a) * z_prev + a * z_next`` of its nearest acquired neighbours (so the network
only has to learn a correction to linear interpolation), and the latents of
``neighbours`` acquired slices on each side (ends padded by repetition). The
fraction ``a`` in (0, 1) and the physical gap in mm are embedded like the
diffusion timestep and added to its embedding in every residual block.

With ``guide_input`` the network also sees the latent of the guide, the
neighbours warped to the target (registration or learned motion), as channels of its
own: it then corrects what warping cannot explain instead of re-drawing what the warp
already placed. Without a guide the linear blend stands in (training shows it so too).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from calid.models.preprocess import crop_to, pad_to_multiple
from calid.models.format import register_architecture

PREDICTION_TYPES = ("sample", "epsilon", "v_prediction")


class GeometryEmbedding(nn.Module):
    """(N, 2) [fraction a, gap mm] -> (N, dim), sinusoidal features then an MLP."""

    def __init__(self, dim: int, features: int = 32) -> None:
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(2 * features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, geometry: torch.Tensor) -> torch.Tensor:
        from monai.networks.nets.diffusion_model_unet import get_timestep_embedding

        fraction = get_timestep_embedding(geometry[:, 0] * 1000.0, self.features)
        gap = get_timestep_embedding(geometry[:, 1] * 10.0, self.features)  # 0.1 mm resolution
        return self.mlp(torch.cat([fraction, gap], dim=1).to(self.mlp[0].weight.dtype))


class ConditionalUNet(nn.Module):
    """Attention-free U-Net from MONAI's diffusion blocks; timestep + geometry embeddings at every block.

    MONAI's ``DiffusionModelUNet`` always puts self-attention in its middle block (an
    extra dependency and most of the CPU cost at these sizes), so the same blocks are
    assembled here with a plain residual middle.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int], num_res_blocks: int, norm_num_groups: int) -> None:
        super().__init__()
        from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock, DownBlock, UpBlock

        embed_dim = channels[0] * 4
        self.time_features = channels[0]
        self.time_embed = nn.Sequential(nn.Linear(channels[0], embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.geometry_embed = GeometryEmbedding(embed_dim)
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        common = {"spatial_dims": 2, "temb_channels": embed_dim, "norm_num_groups": norm_num_groups}
        last = len(channels) - 1
        self.down = nn.ModuleList(
            DownBlock(in_channels=channels[max(i - 1, 0)], out_channels=channels[i], num_res_blocks=num_res_blocks,
                      add_downsample=i < last, **common)
            for i in range(len(channels))
        )
        self.middle = DiffusionUNetResnetBlock(in_channels=channels[-1], **common)
        reverse = list(reversed(channels))
        self.up = nn.ModuleList(
            UpBlock(in_channels=reverse[min(i + 1, last)], prev_output_channel=reverse[max(i - 1, 0)], out_channels=reverse[i],
                    num_res_blocks=num_res_blocks + 1, add_upsample=i < last, **common)
            for i in range(len(channels))
        )
        self.out = nn.Sequential(nn.GroupNorm(norm_num_groups, channels[0]), nn.SiLU(), nn.Conv2d(channels[0], out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, geometry: torch.Tensor,
                mix: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """``mix(level, h)``, when given, runs after every down block, the middle and every up block
        (levels 0 .. 2 * len(channels)); the 2D+T model mixes along time there."""
        from monai.networks.nets.diffusion_model_unet import get_timestep_embedding

        mix = mix or (lambda level, h: h)

        emb = self.time_embed(get_timestep_embedding(timesteps, self.time_features).to(x.dtype))
        emb = emb + self.geometry_embed(geometry).to(x.dtype)
        h = self.conv_in(x)
        skips = [h]
        for level, block in enumerate(self.down):
            h, residuals = block(hidden_states=h, temb=emb)
            skips.extend(residuals)
            h = mix(level, h)
        h = mix(len(self.down), self.middle(h, emb))
        for level, block in enumerate(self.up, start=len(self.down) + 1):
            count = len(block.resnets)
            h = block(hidden_states=h, res_hidden_states_list=skips[-count:], temb=emb)
            skips = skips[:-count]
            h = mix(level, h)
        return self.out(h)

    def level_channels(self) -> list[int]:
        """Feature channels at each ``mix`` level, in call order."""
        down = [block.resnets[-1].out_channels for block in self.down]
        return down + [down[-1]] + [block.resnets[-1].out_channels for block in self.up]


def linear_blend(context: torch.Tensor, fraction: torch.Tensor, neighbours: int) -> torch.Tensor:
    """(1 - a) * z_prev + a * z_next of the two acquired latents around each target in ``context`` (N, 2k, C, h, w)."""
    weight = fraction.to(context.dtype).view(-1, 1, 1, 1)
    return (1 - weight) * context[:, neighbours - 1] + weight * context[:, neighbours]


@register_architecture("calid-denoiser")
class SliceDenoiser(nn.Module):
    """Conditional latent U-Net: noisy latent + linear blend + neighbour latents in, prediction out."""

    def __init__(
        self,
        latent_channels: int = 4,
        neighbours: int = 2,
        channels: Sequence[int] = (64, 128, 128),
        num_res_blocks: int = 1,
        norm_num_groups: int = 16,
        prediction_type: str = "sample",
        num_train_timesteps: int = 1000,
        schedule: str = "scaled_linear_beta",
        guide_input: bool = False,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if latent_channels < 1 or neighbours < 1:
            raise ValueError(f"latent_channels and neighbours must be >= 1, not {latent_channels} and {neighbours}")
        if any(c % norm_num_groups for c in channels):
            raise ValueError(f"every entry of channels {channels} must be a multiple of norm_num_groups={norm_num_groups}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, not {prediction_type!r}")
        self.latent_channels = int(latent_channels)
        self.neighbours = int(neighbours)
        self.prediction_type = prediction_type
        self.num_train_timesteps = int(num_train_timesteps)
        self.schedule = schedule
        self.guide_input = bool(guide_input)
        self.multiple = 2 ** (len(channels) - 1)  # the U-Net's skip connections need sizes divisible by this
        self.unet = ConditionalUNet(
            in_channels=latent_channels * (2 + 2 * neighbours + int(self.guide_input)),
            out_channels=latent_channels,
            channels=channels,
            num_res_blocks=num_res_blocks,
            norm_num_groups=norm_num_groups,
        )

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        fraction: torch.Tensor,
        gap_mm: torch.Tensor,
        frames: int | None = None,
        guide: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """noisy (N, C, h, w); context (N, 2 * neighbours, C, h, w) ordered along z; fraction, gap_mm (N,).

        ``frames``: N holds clips of that many consecutive cine frames (clip-major); this
        model treats every frame on its own, the 2D+T model mixes them. ``guide`` (N, C, h, w):
        the warped estimate's latent, read only by a ``guide_input`` network (None: the linear blend).
        """
        expected = (noisy.shape[0], 2 * self.neighbours, self.latent_channels, *noisy.shape[-2:])
        if tuple(context.shape) != expected:
            raise ValueError(f"context must have shape {expected}, not {tuple(context.shape)}")
        linear = linear_blend(context, fraction.to(noisy.dtype), self.neighbours)
        parts = [noisy, linear, context.flatten(1, 2)]
        if self.guide_input:
            if guide is not None and tuple(guide.shape) != tuple(noisy.shape):
                raise ValueError(f"guide must have the shape of noisy {tuple(noisy.shape)}, not {tuple(guide.shape)}")
            parts.append(linear if guide is None else guide.to(noisy.dtype))
        inputs, size = pad_to_multiple(torch.cat(parts, dim=1), self.multiple)
        geometry = torch.stack([fraction, gap_mm], dim=1).float()
        return crop_to(self.unet(inputs, timesteps, geometry, self.temporal_mix(frames, noisy.shape[0])), size)

    def temporal_mix(self, frames: int | None, count: int) -> Callable[[int, torch.Tensor], torch.Tensor] | None:
        """None: slices are independent (the 3D model)."""
        return None

    def make_scheduler(self):
        """The DDIM scheduler that matches how this network was trained."""
        from monai.networks.schedulers import DDIMScheduler

        return DDIMScheduler(
            num_train_timesteps=self.num_train_timesteps,
            schedule=self.schedule,
            clip_sample=False,
            prediction_type=self.prediction_type,
            **({"beta_start": 0.0015, "beta_end": 0.0195} if self.schedule == "scaled_linear_beta" else {}),
        )


def with_guide_input(model: SliceDenoiser, kwargs: dict) -> tuple[SliceDenoiser, dict]:
    """A ``guide_input`` copy (and its kwargs) of a 3D denoiser built from ``kwargs``, computing exactly what ``model`` does.

    The guide's input channels start at zero weight, so fine-tuning begins from the
    trained network's behaviour rather than from scratch.
    """
    if model.guide_input:
        return model, dict(kwargs)
    kwargs = {**kwargs, "guide_input": True}
    copy = SliceDenoiser(**kwargs)
    state = model.state_dict()
    weight = state["unet.conv_in.weight"]
    extra = weight.new_zeros((weight.shape[0], model.latent_channels, *weight.shape[2:]))
    state["unet.conv_in.weight"] = torch.cat([weight, extra], dim=1)
    copy.load_state_dict(state)
    return copy, kwargs


def with_latent_channels(model: SliceDenoiser, kwargs: dict, latent_channels: int) -> tuple[SliceDenoiser, dict]:
    """A copy (and its kwargs) of a 3D denoiser that reads and predicts ``latent_channels`` (at least the model's).

    For an autoencoder grown from the model's own (``calid train vae --latent-channels N --init``),
    whose leading latent channels began as the old ones: each input group (noisy latent, blend,
    every neighbour, guide) gets the trained weights for its leading channels and zero weight
    for the new ones, and the new output channels start at zero, so training for the new
    latents begins from the trained network's behaviour rather than from scratch.
    """
    old = model.latent_channels
    if latent_channels < old:
        raise ValueError(f"a denoiser can grow to more latent channels, not shrink from {old} to {latent_channels}")
    if latent_channels == old:
        return model, dict(kwargs)
    kwargs = {**kwargs, "latent_channels": int(latent_channels)}
    copy = SliceDenoiser(**kwargs)
    state = model.state_dict()
    weight = state["unet.conv_in.weight"]
    groups = weight.shape[1] // old
    grown = weight.new_zeros((weight.shape[0], groups, latent_channels, *weight.shape[2:]))
    grown[:, :, :old] = weight.unflatten(1, (groups, old))
    state["unet.conv_in.weight"] = grown.flatten(1, 2)
    for name in ("unet.out.2.weight", "unet.out.2.bias"):
        trained = state[name]
        state[name] = torch.cat([trained, trained.new_zeros((latent_channels - old, *trained.shape[1:]))])
    copy.load_state_dict(state)
    return copy, kwargs
