"""``calid phantom -o FILE``: write a synthetic short-axis cine (and its labels) to try things on."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a synthetic beating-heart short-axis cine (with LV, myocardium and RV labels)"
DESCRIPTION = (
    "Render the built-in analytic heart phantom: bright blood, dark myocardium, coil bias, "
    "Rician noise and thick slices. The same seed at a finer --spacing gives the dense truth."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="image file (.nii.gz or .seq.nrrd for a cine; .nrrd/.mha also for --3d)")
    parser.add_argument("--slices", type=int, default=12, help="number of slices (default 12)")
    parser.add_argument("--frames", type=int, help="cine frames (default 20; 1 with --3d)")
    parser.add_argument("--size", type=int, default=256, help="in-plane pixels per side (default 256)")
    parser.add_argument("--spacing", type=float, default=10.0, metavar="MM", help="slice spacing (default 10)")
    parser.add_argument("--pixel-spacing", type=float, default=1.4, metavar="MM", help="default 1.4")
    parser.add_argument("--ef", type=float, default=0.6, help="LV ejection fraction (default 0.6)")
    parser.add_argument("--noise", type=float, default=0.03, help="noise level, blood = 1 (default 0.03)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--oblique", action="store_true", help="double-oblique slice orientation")
    parser.add_argument("--int16", action="store_true",
                        help="store int16 (blood about 1000) as scanners do, instead of float32")
    parser.add_argument("--labels", type=Path, metavar="LABELFILE",
                        help="also write the labels (1 RV, 2 LV myocardium, 3 LV; .seg.nrrd or a labelmap)")
    parser.add_argument("--3d", dest="as_3d", action="store_true", help="one end-diastolic 3D stack")


def _check_outputs(args: argparse.Namespace, cine: bool) -> None:
    """Refuse a format that cannot hold a cine before anything is rendered or written."""
    from calid.errors import InputError
    from calid.io.paths import compound_suffix

    if cine and compound_suffix(args.output) not in (".nii", ".nii.gz", ".seq.nrrd"):
        raise InputError(f"a cine must be written as .nii.gz or .seq.nrrd (or use --3d), not {args.output.name!r}")
    if cine and args.labels is not None and compound_suffix(args.labels) not in (".nii", ".nii.gz", ".seq.nrrd"):
        raise InputError(f"cine labels must be written as .nii.gz or .seq.nrrd (or use --3d), not {args.labels.name!r}")


def run(args: argparse.Namespace) -> int:
    from calid.errors import InputError
    from calid.io.read_write import write, write_segmentation
    from calid.phantom.generator import PhantomParams, make_phantom

    if args.as_3d and args.frames not in (None, 1):
        raise InputError(f"--3d writes a single frame: leave out --frames or give --frames 1, not {args.frames}")
    frames = args.frames if args.frames is not None else (1 if args.as_3d else 20)
    _check_outputs(args, cine=not args.as_3d)
    params = PhantomParams(
        n_slices=args.slices, n_frames=frames, size=(args.size, args.size), pixel_spacing=args.pixel_spacing,
        slice_spacing=args.spacing, ejection_fraction=args.ef, noise=args.noise, oblique=args.oblique,
        seed=args.seed, as_3d=args.as_3d,
    )
    phantom = make_phantom(params)
    image = phantom.image
    if args.int16:  # scanner-like storage: blood about 1000
        import numpy as np

        image = image.replace(array=np.clip(np.rint(image.array * 1000), 0, 32767).astype(np.int16))
    written = [write(image, args.output)]
    if args.labels is not None:
        written.append(write_segmentation(phantom.labels, args.labels))
    shape = "x".join(str(n) for n in phantom.image.array.shape)
    for path in written:
        print(f"wrote {path} ({shape}, slice spacing {args.spacing:g} mm, seed {args.seed})")
    return 0
