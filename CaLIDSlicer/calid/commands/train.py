"""``calid train vae|denoiser|denoiser-2dt``: train the CaLID networks on real short-axis stacks and cines."""

from __future__ import annotations

import argparse
from pathlib import Path

from calid.commands.argtypes import existing, positive_int
from calid.methods.calid_settings import DEFAULT_PRECISION, PRECISIONS

HELP = "train the CaLID autoencoder, latent denoiser or motion guide (single process or under torchrun)"
DESCRIPTION = (
    "Self-supervised training on real short-axis stacks (NIfTI 3D or 4D cine). Only patients of the "
    "'train' split (calid/splits.py) are read; 'val' patients are used for the numbers logged at "
    "checkpoints. denoiser-2dt fine-tunes the 3D denoiser on whole cines (4D files of the folders plus "
    "phantom cines); --batch is then the number of clips (all frames of one slice) per step. Checkpoints in RUN_DIR are resumable (--resume); the finished model is written to "
    "RUN_DIR/model. Multi-process: torchrun --nproc-per-node N -m calid train ..."
)


_existing_dir = existing("--data must be an existing folder, not {text!r}", Path.is_dir)


def _channels(value: str) -> list[int]:
    try:
        widths = [int(part) for part in value.split(",")]
    except ValueError:
        widths = []
    if not widths or any(w < 16 or w % 16 for w in widths):
        raise argparse.ArgumentTypeError(f"--channels must be a comma list of multiples of 16 (GroupNorm), not {value!r}")
    return widths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=("vae", "denoiser", "denoiser-2dt", "motion"), help="which network to train")
    parser.add_argument("--data", type=_existing_dir, action="append", required=True, help="folder of *.nii.gz stacks (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, log, final model")
    parser.add_argument("--steps", type=positive_int, default=2000, help="optimizer steps in total (default 2000)")
    parser.add_argument("--batch", type=positive_int, default=8, help="batch size per process (default 8)")
    parser.add_argument("--crop", type=positive_int, default=96, help="crop size in pixels (default 96)")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR's checkpoint")
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="vae only: train the decoder alone, so latents (and a denoiser trained on them) stay valid")
    parser.add_argument("--vae", type=Path, help="denoiser only: trained autoencoder model folder (default: bundled)")
    parser.add_argument("--init", type=Path,
                        help="vae: model or run folder to start from (tensors of matching name; wider layers, e.g. "
                             "more --latent-channels, get the trained values in their leading channels); "
                             "denoiser: model folder to fine-tune (default: a new network); "
                             "denoiser-2dt: 3D denoiser to build on (default: bundled); "
                             "motion: model folder or run whose tensors of matching name and shape start a new run")
    parser.add_argument("--augment", choices=("dihedral", "none"), default="dihedral",
                        help="denoisers: show each example in a random flip/quarter turn (default dihedral)")
    parser.add_argument("--objective", choices=("diffusion", "trajectory", "guided"),
                        help="denoiser: noise-level loss alone (default diffusion), or plus the loss on the default "
                             "sampler's own trajectory from noise (trajectory), or plus that from the registration-guided "
                             "start too (guided; registration estimates are computed once and cached). x0 prediction only. "
                             "denoiser-2dt: trajectory (default) or guided (trajectory from noise plus from the guide)")
    parser.add_argument("--guide-every", type=int, default=1, metavar="N",
                        help="denoiser --objective guided: registration guides for every N-th cine frame only (default 1; "
                             "denoiser-2dt always uses every frame)")
    parser.add_argument("--guide-input", action="store_true",
                        help="denoiser --objective guided: the network also reads the guide's latent as input channels, so it "
                             "corrects the warped estimate (with --init, those channels are added at zero weight)")
    parser.add_argument("--texture-weight", type=float, default=0.0, metavar="W",
                        help="denoiser --objective trajectory|guided: add W x the texture error (local energy of the fine "
                             "band of the sampler's x0 estimate against the target's; rewards texture, not its phase)")
    parser.add_argument("--tune-all", action="store_true",
                        help="denoiser-2dt only: also fine-tune the 3D network (default: train the temporal layers alone)")
    parser.add_argument("--phantoms", type=int, default=24, help="denoiser-2dt only: phantom cines added to training (default 24)")
    parser.add_argument("--prediction", choices=("sample", "epsilon", "v_prediction"), default="sample",
                        help="denoiser only: what the network predicts (default sample, i.e. x0)")
    parser.add_argument("--ssim-weight", type=float, default=1.0,
                        help="motion only: weight of the (1 - SSIM) loss term against Charbonnier (default 1.0)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "calid" / "train",
                        help="where normalised slices/latents are cached between runs")
    parser.add_argument("--channels", type=_channels, metavar="C1,C2,C3",
                        help="vae/denoiser: network widths per level (default: the bundled model's); larger for GPU runs")
    parser.add_argument("--latent-channels", type=positive_int, metavar="N",
                        help="vae only: latent channels (default: the bundled model's, 4); more keep more detail")
    parser.add_argument("--minutes", type=float, metavar="M",
                        help="stop (with a checkpoint) after M minutes of training; --resume goes on later")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="vae/denoiser/denoiser-2dt: arithmetic of the forward pass (default auto: bfloat16 autocast "
                             "where the GPU or CPU has native bfloat16, e.g. AMX, else float32); weights stay float32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")


def run(args: argparse.Namespace) -> int:
    import torch

    from calid.train.distributed import setup, teardown

    if args.threads:
        torch.set_num_threads(args.threads)
    context = setup(args.device)
    try:
        if args.model == "motion":  # single process: the learned motion guide is small
            from calid.train.motion import run_motion

            run_motion(args, context.device)
        elif args.model == "vae":
            from calid.train.vae_run import run_vae

            run_vae(args, context)
        elif args.model == "denoiser":
            from calid.train.denoiser_run import run_denoiser

            run_denoiser(args, context)
        else:
            from calid.train.temporal_run import run_denoiser_2dt

            run_denoiser_2dt(args, context)
    finally:
        teardown(context)
    return 0
