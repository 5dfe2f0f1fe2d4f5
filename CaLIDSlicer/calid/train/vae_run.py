"""Wiring of ``calid train vae``: data, model, loop, validation, export."""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import torch

from calid.train.data import cached_stacks
from calid.train.distributed import DistributedContext, barrier, unwrap, wrap
from calid.train.loop import LoopSettings, train
from calid.train.vae import VaeLossWeights, save_run_model, slice_batch, vae_loss, validation_psnr

#: The bundled autoencoder's shape (about 0.45 M parameters, 4x downsampling, 4 latent channels).
VAE_KWARGS = {"channels": [32, 64, 64], "latent_channels": 4, "num_res_blocks": 1, "norm_num_groups": 16}


def run_vae(args: argparse.Namespace, context: DistributedContext) -> None:
    from calid.models.vae import SliceAutoencoder

    data = [str(d) for d in args.data]
    if context.is_main:  # one process builds the cache, the others wait and read it
        cached_stacks(data, "train", args.cache_dir)
        cached_stacks(data, "val", args.cache_dir)
    barrier(context)
    stacks = cached_stacks(data, "train", args.cache_dir)
    val_stacks = cached_stacks(data, "val", args.cache_dir)
    torch.manual_seed(args.seed)
    kwargs = {**VAE_KWARGS, **({"channels": args.channels} if getattr(args, "channels", None) else {}),
              **({"latent_channels": args.latent_channels} if getattr(args, "latent_channels", None) else {})}
    autoencoder = SliceAutoencoder(**kwargs)
    if getattr(args, "init", None) is not None and not args.resume:
        from calid.train.warm_start import grow_into, trained_tensors

        counts = grow_into(autoencoder, trained_tensors(args.init))
        if context.is_main:
            print(json.dumps({"event": "init", "from": str(args.init), **counts}), flush=True)
    if args.freeze_encoder:
        freeze_encoder(autoencoder)
    model = wrap(autoencoder, context)
    weights = VaeLossWeights()
    started = time.perf_counter()

    def report(step: int) -> None:
        if not val_stacks:  # a compact export of the train split alone: validation happens on the CPU later
            return
        net = unwrap(model).eval()
        score = validation_psnr(net, val_stacks)
        net.train()
        print(json.dumps({"step": step, "val_psnr": round(score, 2), "minutes": round((time.perf_counter() - started) / 60, 1)}), flush=True)

    settings = LoopSettings(steps=args.steps, learning_rate=args.lr, minutes=getattr(args, "minutes", None),
                            precision=getattr(args, "precision", "auto"))
    train(
        model,
        partial(slice_batch, stacks, args.batch, args.crop),
        lambda net, batch: vae_loss(net, batch.to(context.device), weights, sample=not args.freeze_encoder),
        settings,
        context,
        args.out,
        args.seed,
        resume=args.resume,
        on_checkpoint=report,
    )
    if context.is_main:
        card = (
            f"# calid-vae-acdc (training run)\n\nSliceAutoencoder {kwargs}, {args.steps} steps, batch {args.batch}, "
            f"crop {args.crop}, trained on the 'train' split of {', '.join(data)}"
            f"{f', started from {args.init}' if getattr(args, 'init', None) else ''}.\n"
        )
        save_run_model(unwrap(model).cpu(), kwargs, stacks, args.out / "model", card)


def freeze_encoder(autoencoder: torch.nn.Module) -> None:
    """Stop gradients into everything that produces latents (encoder and its posterior convs)."""
    net = autoencoder.net
    for part in (net.encoder, net.quant_conv_mu, net.quant_conv_log_sigma):
        part.requires_grad_(False)
