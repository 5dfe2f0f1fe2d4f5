"""Wiring of ``calid train denoiser``: latents from the frozen autoencoder, loop, validation, export."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from calid.train.data import cached_stacks
from calid.methods.calid_settings import DEFAULT_GUIDE_STRENGTH
from calid.methods.reconstruction import DEFAULT_STEPS
from calid.methods.sampling import trailing_schedule
from calid.train.denoiser import denoiser_loss, diffusion_batch, guide_dropout, latent_batch, texture_error, trajectory_loss
from calid.train.distributed import DistributedContext, barrier, unwrap, wrap
from calid.train.latents import LatentStack, encode_stacks, load_latents, save_latents
from calid.train.loop import LoopSettings, train

#: Share of training examples a ``--guide-input`` network sees with the linear blend in place of its guide.
GUIDE_DROPOUT = 0.15

#: The bundled denoiser's shape (about 2.2 M parameters).
DENOISER_KWARGS = {"latent_channels": 4, "neighbours": 2, "channels": [32, 64, 128], "num_res_blocks": 1, "norm_num_groups": 16}


def autoencoder_dir(args: argparse.Namespace) -> Path:
    from calid.models.search import find_model

    return args.vae if args.vae is not None else find_model("calid-vae-acdc")


def autoencoder_latent_channels(args: argparse.Namespace) -> int:
    """Latent channels of the autoencoder the denoiser is trained on: a fresh network is built to match it."""
    config = json.loads((autoencoder_dir(args) / "config.json").read_text())
    return int(config["kwargs"].get("latent_channels", DENOISER_KWARGS["latent_channels"]))


def autoencoder_cache(args: argparse.Namespace, name: str, split: str, context: DistributedContext, build) -> Path:
    """A cache file of ``split`` derived through the autoencoder, made once (main rank) per its weights' SHA-256.

    ``name`` holds ``{key}``; ``build(autoencoder, stacks, path)`` writes the file.
    """
    from calid.models.format import WEIGHTS_FILE, load_model, sha256_of

    vae_dir = autoencoder_dir(args)
    path = Path(args.cache_dir) / name.format(key=sha256_of(vae_dir / WEIGHTS_FILE)[:12])
    if context.is_main and not path.is_file():
        autoencoder, _ = load_model(vae_dir)
        build(autoencoder, cached_stacks([str(d) for d in args.data], split, args.cache_dir), path)
    barrier(context)
    return path


def cached_latents(args: argparse.Namespace, split: str, context: DistributedContext) -> list[LatentStack]:
    """Latents of a split, computed once per autoencoder."""
    path = autoencoder_cache(args, f"latents-v2-{split}-{{key}}.npz", split, context,
                             lambda autoencoder, stacks, target: save_latents(target, encode_stacks(autoencoder, stacks)))
    return load_latents(path)


def cached_guides(args: argparse.Namespace, split: str, context: DistributedContext) -> list[LatentStack | None]:
    """Registration-guide latents of a split (see :mod:`calid.train.guides`), computed once per autoencoder."""
    from calid.train.data import load_array_list, save_array_list
    from calid.train.guides import build_guides

    def build(autoencoder, stacks, target: Path) -> None:
        done = iter(range(1, len(stacks) + 1))

        def tell() -> None:  # registration of every stack takes minutes: say how far it got
            count = next(done)
            if count % 50 == 0 or count == len(stacks):
                print(json.dumps({"event": "guides", "split": split, "stacks": count, "of": len(stacks)}), flush=True)

        guides = build_guides(autoencoder, stacks, [str(d) for d in args.data], args.guide_every, on_stack=tell)
        empty = np.zeros((0,), np.float16)
        save_array_list(target, [g.latents if g is not None else empty for g in guides],
                        [s.slice_spacing for s in stacks], [s.source for s in stacks])

    path = autoencoder_cache(args, f"guides-{split}-{{key}}-every{args.guide_every}.npz", split, context, build)
    return [LatentStack(array, spacing, source) if array.size else None for array, spacing, source in load_array_list(path)]


@torch.no_grad()
def validation_scores(model: torch.nn.Module, stacks: list[LatentStack], neighbours: int, steps: int = DEFAULT_STEPS,
                      guides: list[LatentStack | None] | None = None) -> dict[str, float]:
    """Latent MSE of DDIM samples vs the truth, and of linear blending, on fixed val examples (guided too, with ``guides``)."""
    from calid.methods.calid_settings import DEFAULT_GUIDE_STRENGTH
    from calid.methods.sampling import SamplerSettings, sample_latents
    from calid.models.denoiser import linear_blend

    generator = torch.Generator().manual_seed(1)
    target, context, fraction, gap_mm = latent_batch(stacks, 64, 16, neighbours, generator)
    settings = SamplerSettings(steps=steps, temperature=0.0)
    sampled = sample_latents(model, context, fraction, gap_mm, settings, generator)[0]
    linear = linear_blend(context, fraction, neighbours)
    scores = {"val_mse": float(((sampled - target) ** 2).mean()), "linear_mse": float(((linear - target) ** 2).mean())}
    if guides is not None:
        generator = torch.Generator().manual_seed(1)
        target, context, fraction, gap_mm, guide = latent_batch(stacks, 64, 16, neighbours, generator, guides=guides)
        guided = replace(settings, strength=DEFAULT_GUIDE_STRENGTH)
        sampled = sample_latents(model, context, fraction, gap_mm, guided, generator, guide=guide)[0]
        scores.update(guided_mse=float(((sampled - target) ** 2).mean()), guide_mse=float(((guide - target) ** 2).mean()))
    return scores


def initial_denoiser(args: argparse.Namespace):
    """A fresh network of the bundled shape, or (``--init``) a trained 3D denoiser to fine-tune, and its kwargs.

    Either reads as many latent channels as the autoencoder makes; an ``--init`` model with fewer
    (the autoencoder grew, ``calid train vae --latent-channels N --init``) gets the new ones at zero weight.

    ``--guide-input``: the network reads the guide's latent too; an ``--init`` model without
    that input gets it added at zero weight (:func:`calid.models.denoiser.with_guide_input`).
    """
    from calid.models.denoiser import SliceDenoiser, with_guide_input, with_latent_channels
    from calid.models.format import load_model

    guide_input = bool(getattr(args, "guide_input", False))
    if args.init is None:
        kwargs = {**DENOISER_KWARGS, "latent_channels": autoencoder_latent_channels(args),
                  "prediction_type": args.prediction, **({"guide_input": True} if guide_input else {})}
        if getattr(args, "channels", None):
            kwargs["channels"] = list(args.channels)
        return SliceDenoiser(**kwargs), kwargs
    model, config = load_model(args.init)
    if config.architecture != "calid-denoiser" or config.kwargs.get("prediction_type", "sample") != args.prediction:
        raise ValueError(f"--init must be a 3D calid denoiser predicting {args.prediction!r}, not {config.architecture!r} {config.kwargs}")
    expected = autoencoder_latent_channels(args)
    if model.latent_channels > expected:
        raise ValueError(f"--init {args.init} reads {model.latent_channels} latent channels but the autoencoder "
                         f"{autoencoder_dir(args)} makes only {expected}: leave --init out to train a new denoiser for it")
    model, kwargs = with_latent_channels(model, config.kwargs, expected)  # a grown autoencoder: new channels at zero weight
    return with_guide_input(model, kwargs) if guide_input else (model, kwargs)


def run_denoiser(args: argparse.Namespace, context: DistributedContext) -> None:
    from calid.models.format import ModelConfig, save_model

    args.objective = args.objective or "diffusion"
    if args.objective in ("trajectory", "guided") and args.prediction != "sample":
        raise ValueError(f"--objective {args.objective} needs --prediction sample (the sampler's x0 estimates are what it scores)")
    guided = args.objective == "guided"
    if getattr(args, "guide_input", False) and not guided:
        raise ValueError("--guide-input needs --objective guided: the network learns from the cached guides that objective builds")
    latents = cached_latents(args, "train", context)
    val_latents = cached_latents(args, "val", context)
    guides = cached_guides(args, "train", context) if guided else None
    val_guides = cached_guides(args, "val", context) if guided else None
    torch.manual_seed(args.seed)
    network, kwargs = initial_denoiser(args)
    model = wrap(network.train(), context)
    # trailing timesteps only change what step() visits; add_noise (noise-level training) is unaffected
    scheduler = trailing_schedule(unwrap(model).make_scheduler(), DEFAULT_STEPS)
    guided_scheduler = trailing_schedule(unwrap(model).make_scheduler(), DEFAULT_STEPS, DEFAULT_GUIDE_STRENGTH)
    crop = args.crop // 4

    def report(step: int) -> None:
        if not val_latents:  # a compact export of the train split alone: validation happens on the CPU later
            return
        net = unwrap(model).eval()
        print(json.dumps({"step": step, **validation_scores(net, val_latents, net.neighbours, guides=val_guides)}), flush=True)
        net.train()

    reads_guide = bool(getattr(unwrap(model), "guide_input", False))
    texture = getattr(args, "texture_weight", 0.0)
    extra = (lambda estimate, target: texture * texture_error(estimate, target)) if texture > 0 else None

    def loss_of(net, batch):
        batch = [part.to(context.device) for part in batch]
        inputs = {}
        if reads_guide:  # the guide as an input too, now and then replaced by the linear blend (--guide none)
            inputs = {"guide": guide_dropout(batch[-1], batch[1], batch[2], kwargs["neighbours"], GUIDE_DROPOUT)}
        loss, logged = denoiser_loss(net, scheduler, batch, args.prediction, **inputs)
        if args.objective == "diffusion":
            return loss, logged
        path, _ = trajectory_loss(net, scheduler, batch, extra)  # noise levels stay trained, so --samples N keeps working
        logged = {"diffusion": float(loss.detach()), "trajectory": float(path.detach())}
        if not guided:
            return loss + path, logged
        # the default sampler's start; a guide-reading network sees the guide at every step as well
        from_guide, _ = trajectory_loss(net, guided_scheduler, batch, extra, guide=batch[-1],
                                        guide_input=batch[-1] if reads_guide else None)
        return loss + path + from_guide, {**logged, "guided": float(from_guide.detach())}

    draw = partial(diffusion_batch, latents, args.batch, crop, kwargs["neighbours"], scheduler.num_train_timesteps,
                   augment=args.augment == "dihedral", guides=guides)
    settings = LoopSettings(steps=args.steps, learning_rate=args.lr, minutes=getattr(args, "minutes", None),
                            precision=getattr(args, "precision", "auto"))
    train(model, draw, loss_of, settings, context, args.out, args.seed, resume=args.resume, on_checkpoint=report)
    if context.is_main:
        vae_name = json.loads((autoencoder_dir(args) / "config.json").read_text())["name"]
        config = ModelConfig(name="calid-denoiser-acdc", version="0.1.0", kind="denoiser", architecture="calid-denoiser",
                             kwargs=kwargs, extra={"autoencoder": vae_name})
        card = f"# calid-denoiser-acdc (training run)\n\nSliceDenoiser {kwargs}, {args.steps} steps, batch {args.batch}.\n"
        save_model(unwrap(model).cpu(), config, args.out / "model", card, overwrite=True)
