"""Wiring of ``calid train denoiser-2dt``: cine latents, fine-tuning from the 3D denoiser, validation, export."""

from __future__ import annotations

import argparse
import hashlib
import json
from functools import partial
from pathlib import Path

import torch

from calid.calid_fill import SINGLE_SAMPLE_TEMPERATURE
from calid.reconstruction import DEFAULT_STEPS
from calid.sampling import trailing_schedule
from calid.train.denoiser_run import autoencoder_dir
from calid.train.distributed import DistributedContext, barrier, unwrap, wrap
from calid.train.loop import LoopSettings, train
from calid.train.denoiser import trajectory_loss
from calid.train.temporal import (PHANTOM_SEED_BASE, LatentCine, clip_batch, encode_cines, frame_change_error, load_cines, phantom_cines,
                                  read_cines, save_cines, temporal_batch, temporal_difference_error)

MODEL_NAME = "calid-denoiser-2dt-acdc"
SLICE_MODEL = "calid-denoiser-acdc"
TEMPORAL_KERNEL = 3
#: Validation phantoms use their own seeds (apart from training's and evaluation's).
VAL_PHANTOM_SEEDS = 20_000
VAL_CLIPS = 6


def cached_cines(args: argparse.Namespace, split: str, context: DistributedContext) -> list[LatentCine]:
    """Cine latents of a split (+ phantoms), computed once per autoencoder, data folders and phantom count."""
    from calid.weights import WEIGHTS_FILE, load_model, sha256_of

    vae_dir = autoencoder_dir(args)
    phantoms = args.phantoms if split == "train" else max(2, args.phantoms // 8)
    folders = json.dumps([str(Path(d).resolve()) for d in args.data] + [phantoms])
    key = sha256_of(vae_dir / WEIGHTS_FILE)[:12] + "-" + hashlib.sha256(folders.encode()).hexdigest()[:8]
    path = Path(args.cache_dir) / f"cines-v2-{split}-{key}.npz"
    if context.is_main and not path.is_file():
        autoencoder, _ = load_model(vae_dir)
        seed_base = PHANTOM_SEED_BASE if split == "train" else VAL_PHANTOM_SEEDS
        cines = read_cines(args.data, split) + phantom_cines(phantoms, seed_base=seed_base)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_cines(path, encode_cines(autoencoder, cines))
    barrier(context)
    return load_cines(path)


def initial_model(args: argparse.Namespace):
    """The 2D+T network, its 3D weights taken from the trained slice denoiser."""
    from calid.models.temporal import TemporalSliceDenoiser
    from calid.weights import find_model, load_model

    slice_model, config = load_model(args.init if args.init is not None else find_model(SLICE_MODEL))
    if config.architecture != "calid-denoiser" or config.kwargs.get("prediction_type", "sample") != "sample":
        raise ValueError(f"--init must be a 3D calid denoiser that predicts x0, not {config.architecture!r} {config.kwargs}")
    kwargs = {**config.kwargs, "temporal_kernel": TEMPORAL_KERNEL}
    model = TemporalSliceDenoiser(**kwargs)
    model.load_slice_weights(slice_model)
    if not args.tune_all:  # only the temporal layers learn: per frame it stays the measured 3D model
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith("mixers."))
    return model, kwargs, config.name


@torch.no_grad()
def validation_scores(model: torch.nn.Module, cines: list[LatentCine], steps: int = DEFAULT_STEPS) -> dict[str, float]:
    """Latent MSE and frame-to-frame-change error of deterministic samples on fixed val clips."""
    from calid.sampling import SamplerSettings, sample_latents

    totals = {"val_mse": 0.0, "val_temporal": 0.0}
    generator = torch.Generator().manual_seed(1)
    for _ in range(VAL_CLIPS):
        target, context, fraction, gap_mm, frames = clip_batch(cines, 1, 16, model.neighbours, generator)
        settings = SamplerSettings(steps=steps, temperature=SINGLE_SAMPLE_TEMPERATURE, chunk=frames)
        sampled = sample_latents(model, context, fraction, gap_mm, settings, generator, model_kwargs={"frames": frames})[0]
        totals["val_mse"] += float(((sampled - target) ** 2).mean()) / VAL_CLIPS
        totals["val_temporal"] += temporal_difference_error(sampled, target, frames) / VAL_CLIPS
    return totals


def run_denoiser_2dt(args: argparse.Namespace, context: DistributedContext) -> None:
    from calid.weights import ModelConfig, save_model

    cines = cached_cines(args, "train", context)
    val_cines = cached_cines(args, "val", context)
    torch.manual_seed(args.seed)
    network, kwargs, slice_name = initial_model(args)
    if context.is_main:
        print(json.dumps({"step": 0, "cines": len(cines), **validation_scores(network.eval(), val_cines)}), flush=True)
    model = wrap(network.train(), context)
    scheduler = trailing_schedule(unwrap(model).make_scheduler(), DEFAULT_STEPS)

    def report(step: int) -> None:
        net = unwrap(model).eval()
        print(json.dumps({"step": step, **validation_scores(net, val_cines)}), flush=True)
        net.train()

    def loss_of(net, batch):
        *tensors, frames = batch
        changes = partial(frame_change_error, frames=frames)
        return trajectory_loss(net, scheduler, [part.to(context.device) for part in tensors], changes, frames=frames)

    draw = partial(temporal_batch, cines, args.batch, args.crop // 4, kwargs["neighbours"], scheduler.num_train_timesteps,
                   augment=args.augment == "dihedral")
    settings = LoopSettings(steps=args.steps, learning_rate=args.lr)
    train(model, draw, loss_of, settings, context, args.out, args.seed, resume=args.resume, on_checkpoint=report)
    if context.is_main:
        vae_name = json.loads((autoencoder_dir(args) / "config.json").read_text())["name"]
        config = ModelConfig(name=MODEL_NAME, version="1", kind="denoiser", architecture="calid-denoiser-2dt",
                             kwargs=kwargs, extra={"autoencoder": vae_name, "initialised_from": slice_name})
        card = f"# {MODEL_NAME} (training run)\n\nTemporalSliceDenoiser {kwargs}, {args.steps} steps, {args.batch} clips per step.\n"
        save_model(unwrap(model).cpu(), config, args.out / "model", card, overwrite=True)
