"""Wiring of ``calid train denoiser-2dt``: cine latents, fine-tuning from the 3D denoiser, validation, export."""

from __future__ import annotations

import argparse
import hashlib
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch

from calid.methods.calid_settings import DEFAULT_GUIDE_STRENGTH, SINGLE_SAMPLE_TEMPERATURE
from calid.methods.reconstruction import DEFAULT_STEPS
from calid.methods.sampling import trailing_schedule
from calid.train.denoiser_run import autoencoder_dir
from calid.train.distributed import DistributedContext, barrier, unwrap, wrap
from calid.train.loop import LoopSettings, train
from calid.train.denoiser import trajectory_loss
from calid.train.temporal import (PHANTOM_SEED_BASE, LatentCine, cine_guides, clip_batch, encode_cines, frame_change_error, load_cines,
                                  phantom_cines, read_cines, save_cines, temporal_batch, temporal_difference_error)

MODEL_NAME = "calid-denoiser-2dt-acdc"
SLICE_MODEL = "calid-denoiser-acdc"
TEMPORAL_KERNEL = 3
#: Validation phantoms use their own seeds (apart from training's and evaluation's).
VAL_PHANTOM_SEEDS = 20_000
VAL_CLIPS = 6


def _cine_cache(args: argparse.Namespace, kind: str, split: str) -> tuple[Path, int]:
    """Cache file of ``kind`` for a split (keyed by autoencoder, data folders and phantom count) and the phantom count."""
    from calid.models.format import WEIGHTS_FILE, sha256_of

    phantoms = args.phantoms if split == "train" else max(2, args.phantoms // 8)
    folders = json.dumps([str(Path(d).resolve()) for d in args.data] + [phantoms])
    key = sha256_of(autoencoder_dir(args) / WEIGHTS_FILE)[:12] + "-" + hashlib.sha256(folders.encode()).hexdigest()[:8]
    return Path(args.cache_dir) / f"{kind}-{split}-{key}.npz", phantoms


def cached_cines(args: argparse.Namespace, split: str, context: DistributedContext) -> list[LatentCine]:
    """Cine latents of a split (+ phantoms), computed once per autoencoder, data folders and phantom count."""
    from calid.models.format import load_model

    path, phantoms = _cine_cache(args, "cines-v2", split)
    if context.is_main and not path.is_file():
        autoencoder, _ = load_model(autoencoder_dir(args))
        seed_base = PHANTOM_SEED_BASE if split == "train" else VAL_PHANTOM_SEEDS
        cines = read_cines(args.data, split) + phantom_cines(phantoms, seed_base=seed_base)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_cines(path, encode_cines(autoencoder, cines))
    barrier(context)
    return load_cines(path)


def cached_cine_guides(args: argparse.Namespace, split: str, context: DistributedContext) -> list[np.ndarray | None]:
    """Registration-guide latents of every real cine of a split, aligned with :func:`cached_cines` (None for phantoms)."""
    from calid.train.data import load_array_list, save_array_list
    from calid.models.format import load_model

    path, phantoms = _cine_cache(args, "cine-guides", split)
    if context.is_main and not path.is_file():
        autoencoder, _ = load_model(autoencoder_dir(args))
        cines = read_cines(args.data, split)
        done = iter(range(1, len(cines) + 1))

        def tell() -> None:  # registration of every frame takes minutes: say how far it got
            print(json.dumps({"event": "guides", "split": split, "cines": next(done), "of": len(cines)}), flush=True)

        with torch.no_grad():
            guides = cine_guides(autoencoder, cines, [str(d) for d in args.data], on_cine=tell)
        empty = np.zeros((0,), np.float16)
        save_array_list(path, [g if g is not None else empty for g in guides] + [empty] * phantoms,
                        [c.slice_spacing for c in cines] + [0.0] * phantoms, [c.source for c in cines] + ["phantom"] * phantoms)
    barrier(context)
    return [array if array.size else None for array, _, _ in load_array_list(path)]


def initial_model(args: argparse.Namespace):
    """The 2D+T network, its 3D weights taken from the trained slice denoiser."""
    from calid.models.temporal import TemporalSliceDenoiser
    from calid.models.format import load_model
    from calid.models.search import find_model

    slice_model, config = load_model(args.init if args.init is not None else find_model(SLICE_MODEL))
    if config.architecture == "calid-denoiser-2dt":  # fine-tune a trained 2D+T model's temporal layers further
        model, kwargs = slice_model, dict(config.kwargs)
        name = config.extra.get("initialised_from", config.name)
    elif config.architecture != "calid-denoiser" or config.kwargs.get("prediction_type", "sample") != "sample":
        raise ValueError(f"--init must be a 3D calid denoiser that predicts x0 or a 2D+T one, not {config.architecture!r} {config.kwargs}")
    else:
        kwargs = {**config.kwargs, "temporal_kernel": TEMPORAL_KERNEL}
        model = TemporalSliceDenoiser(**kwargs)
        model.load_slice_weights(slice_model)
        name = config.name
    if not args.tune_all:  # only the temporal layers learn: per frame it stays the measured 3D model
        for parameter_name, parameter in model.named_parameters():
            parameter.requires_grad_(parameter_name.startswith("mixers."))
    return model, kwargs, name


def _sampled_clip_errors(model: torch.nn.Module, cines: list[LatentCine], steps: int,
                         guides: list[np.ndarray | None] | None = None) -> tuple[float, float]:
    """Mean latent MSE and frame-change error of deterministic samples on VAL_CLIPS fixed clips (guided start with ``guides``)."""
    from calid.methods.sampling import SamplerSettings, sample_latents

    generator = torch.Generator().manual_seed(1)
    mse = temporal = 0.0
    for _ in range(VAL_CLIPS):
        drawn = clip_batch(cines, 1, 16, model.neighbours, generator, guides=guides)
        (target, context, fraction, gap_mm), frames = drawn[:4], drawn[-1]
        settings = SamplerSettings(steps=steps, temperature=SINGLE_SAMPLE_TEMPERATURE, chunk=frames, strength=DEFAULT_GUIDE_STRENGTH)
        guide = drawn[4] if guides is not None else None  # without a guide the sampler starts from pure noise
        sampled = sample_latents(model, context, fraction, gap_mm, settings, generator, model_kwargs={"frames": frames},
                                 guide=guide)[0]
        mse += float(((sampled - target) ** 2).mean()) / VAL_CLIPS
        temporal += temporal_difference_error(sampled, target, frames) / VAL_CLIPS
    return mse, temporal


@torch.no_grad()
def validation_scores(model: torch.nn.Module, cines: list[LatentCine], steps: int = DEFAULT_STEPS,
                      guides: list[np.ndarray | None] | None = None) -> dict[str, float]:
    """Latent MSE and frame-to-frame-change error of deterministic samples on fixed val clips (from guides too, if given)."""
    scores = dict(zip(("val_mse", "val_temporal"), _sampled_clip_errors(model, cines, steps)))
    if guides is not None:
        scores.update(zip(("guided_mse", "guided_temporal"), _sampled_clip_errors(model, cines, steps, guides)))
    return scores


def run_denoiser_2dt(args: argparse.Namespace, context: DistributedContext) -> None:
    from calid.models.format import ModelConfig, save_model

    if args.objective not in (None, "trajectory", "guided"):
        raise ValueError("denoiser-2dt trains on the sampler's trajectory: use --objective trajectory (default) or guided")
    guided = args.objective == "guided"
    cines = cached_cines(args, "train", context)
    val_cines = cached_cines(args, "val", context)
    guides = cached_cine_guides(args, "train", context) if guided else None
    val_guides = cached_cine_guides(args, "val", context) if guided else None
    if guided and not (any(g is not None for g in guides) and any(g is not None for g in val_guides)):
        raise ValueError("--objective guided needs real 4D cines (3 or more slices) of both train and val patients in --data; "
                         "phantoms have no registration guides")
    torch.manual_seed(args.seed)
    network, kwargs, slice_name = initial_model(args)
    if context.is_main:
        print(json.dumps({"step": 0, "cines": len(cines), **validation_scores(network.eval(), val_cines, guides=val_guides)}),
              flush=True)
    model = wrap(network.train(), context)
    scheduler = trailing_schedule(unwrap(model).make_scheduler(), DEFAULT_STEPS)
    guided_scheduler = trailing_schedule(unwrap(model).make_scheduler(), DEFAULT_STEPS, DEFAULT_GUIDE_STRENGTH)

    def report(step: int) -> None:
        net = unwrap(model).eval()
        print(json.dumps({"step": step, **validation_scores(net, val_cines, guides=val_guides)}), flush=True)
        net.train()

    def path_loss(net, batch, schedule, guide=None):
        *tensors, frames = batch
        changes = partial(frame_change_error, frames=frames)
        guide = guide.to(context.device) if guide is not None else None
        return trajectory_loss(net, schedule, [part.to(context.device) for part in tensors], changes, guide, frames=frames)

    def loss_of(net, batch):
        if not guided:
            return path_loss(net, batch, scheduler)
        plain, with_guide = batch
        from_noise, _ = path_loss(net, plain, scheduler)
        *tensors, guide, frames = with_guide
        from_guide, _ = path_loss(net, (*tensors, frames), guided_scheduler, guide)  # the default sampler's start
        return from_noise + from_guide, {"trajectory": float(from_noise.detach()), "guided": float(from_guide.detach())}

    plain_draw = partial(temporal_batch, cines, args.batch, args.crop // 4, kwargs["neighbours"], scheduler.num_train_timesteps,
                         augment=args.augment == "dihedral")
    guided_draw = partial(clip_batch, cines, args.batch, args.crop // 4, kwargs["neighbours"], augment=args.augment == "dihedral",
                          guides=guides)
    draw = plain_draw if not guided else (lambda generator: (plain_draw(generator), guided_draw(generator)))
    settings = LoopSettings(steps=args.steps, learning_rate=args.lr,
                            precision=getattr(args, "precision", "auto"))
    train(model, draw, loss_of, settings, context, args.out, args.seed, resume=args.resume, on_checkpoint=report)
    if context.is_main:
        vae_name = json.loads((autoencoder_dir(args) / "config.json").read_text())["name"]
        config = ModelConfig(name=MODEL_NAME, version="0.1.0", kind="denoiser", architecture="calid-denoiser-2dt",
                             kwargs=kwargs, extra={"autoencoder": vae_name, "initialised_from": slice_name})
        card = f"# {MODEL_NAME} (training run)\n\nTemporalSliceDenoiser {kwargs}, {args.steps} steps, {args.batch} clips per step.\n"
        save_model(unwrap(model).cpu(), config, args.out / "model", card, overwrite=True)
