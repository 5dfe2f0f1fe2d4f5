"""``calid export-trainset``: the compact training set a lent GPU machine takes (uint8 heart crops, no NIfTI)."""

from __future__ import annotations

import argparse
from pathlib import Path

from calid.commands.argtypes import comma_list, positive_int

HELP = "write a compact training set (heart crops, uint8 .npz + JSON manifest) for a machine without SimpleITK"
DESCRIPTION = (
    "Reads the *.nii.gz images of the chosen splits (calid/splits.py; default: train only) in --data and its "
    "direct subfolders, normalises each stack like training does, crops a square around the heart and writes "
    "OUT/slices.npz (uint8) and OUT/trainset.json. 'calid train vae|denoiser --data OUT' reads it. The result is "
    "derived from ACDC: keep it out of version control."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="folder of *.nii.gz images, or a folder of such folders (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (e.g. devdata/)")
    parser.add_argument("--size", type=positive_int, default=96, help="crop side in pixels (default 96)")
    parser.add_argument("--splits", type=comma_list, default=["train"], help="comma list of train, val (default train)")
    parser.add_argument("--frame-step", type=positive_int, default=4,
                        help="cines: keep every N-th frame as a stack (default 4)")


def run(args: argparse.Namespace) -> int:
    from calid.errors import InputError
    from calid.train.trainset import ARRAYS, MANIFEST, export_trainset

    missing = [str(d) for d in args.data if not d.is_dir()]
    if missing:
        raise InputError(f"--data must name existing folders; not found: {', '.join(missing)}")
    bad = [s for s in args.splits if s not in ("train", "val")]
    if bad:
        raise InputError(f"--splits must be among train, val (test patients are never exported), not {', '.join(bad)}")
    try:
        manifest = export_trainset(args.data, args.out, args.size, tuple(args.splits), args.frame_step)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from None
    size = sum((args.out / name).stat().st_size for name in (ARRAYS, MANIFEST))
    print(f"wrote {args.out}: {len(manifest['stacks'])} stacks, {manifest['slices']} slices of "
          f"{args.size}x{args.size} uint8, {size / 2**20:.2f} MiB")
    return 0
