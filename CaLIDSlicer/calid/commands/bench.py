"""``calid bench``: time reconstruction methods side by side on the same phantom inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from calid.commands.argtypes import comma_list, positive_int
from calid.commands.reconstruct import add_precision_argument
from calid.methods.calid_settings import GUIDE_LATENTS

HELP = "time methods side by side (per stage, median of repeats, peak memory)"
DESCRIPTION = (
    "Times read, reconstruct (per stage) and write for each method on a 10x256x256 stack (x4), a "
    "12x20x256x256 cine (x2) and (case large) a 5-frame cut of a 512x512 x 30-slice cine (x2), after one warm-up run; prints a markdown table and optionally writes JSON. "
    "Method pixel-diffusion is a bench-only UNTRAINED comparator (calid's denoiser and sampler on image slices "
    "instead of latents): with calid in the same call it prints the pixel/latent time ratio at equal --steps. "
    "--input times a real file too (--frames N keeps the first N frames of a cine); --segment adds the "
    "segmentation of each dense output and prints its time over the reconstruction's."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=comma_list, default=["3d", "cine"], help="comma list of: 3d, cine, large (default 3d,cine)")
    parser.add_argument("--methods", type=comma_list, default=["linear", "registration", "calid"],
                        help="comma list of methods (default linear,registration,calid); also pixel-diffusion "
                             "(untrained, timing only)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per method after one warm-up")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=positive_int,
                        help="diffusion steps for calid and pixel-diffusion (default: the engine's)")
    parser.add_argument("--guide", choices=("registration", "motion", "none"),
                        help="calid's start (default: the engine's, registration; motion: the learned motion guide, "
                             "which runs on the device; none needs no SimpleITK)")
    parser.add_argument("--guide-latents", choices=GUIDE_LATENTS,
                        help="how calid makes the registration guide's latent (default: the engine's, encode; warp: "
                             "moves the acquired slices' latents, no encoding of the guides)")
    add_precision_argument(parser)
    parser.add_argument("--io", choices=("file", "npy"), default="file",
                        help="read/write NIfTI (file, default) or .npy arrays (npy: for a machine without SimpleITK)")
    parser.add_argument("--size", type=positive_int, metavar="PX",
                        help="in-plane pixels of every case instead of its own (small sizes rehearse a run)")
    parser.add_argument("--frames", type=positive_int, metavar="N",
                        help="frames of every cine (phantom case or --input: its first N) instead of its own")
    parser.add_argument("--input", type=Path, action="append", default=[], metavar="FILE",
                        help="also time a real image or cine (repeatable); --cases '' times only these")
    parser.add_argument("--factor", type=positive_int, default=2, help="upsampling factor for --input (default 2)")
    parser.add_argument("--segment", action="store_true",
                        help="also time `calid segment` on each method's dense output (stage 'segment', not in total)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from calid.evaluation.bench import (CASES, DIFFUSION_METHODS, cpu_stages, input_case, markdown_table, ratio_lines,
                                        rows_as_dicts, run_bench, segment_lines, speed_ratios)
    from calid.commands.env import collect
    from calid.errors import InputError
    from calid.methods.reconstruction import BASELINES

    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        raise InputError(f"--cases must be among {', '.join(CASES)}, not {', '.join(unknown)}")
    known = (*BASELINES, *DIFFUSION_METHODS)
    bad = [m for m in args.methods if m not in known]
    if bad:
        raise InputError(f"--methods must be among {', '.join(known)}, not {', '.join(bad)}")
    if args.factor < 2:
        raise InputError(f"--factor must be at least 2, not {args.factor}")
    inputs = [(*input_case(path, args.frames), args.factor) for path in args.input]
    extra = {**({"steps": args.steps} if args.steps else {}), **({"guide": args.guide} if args.guide else {}),
             **({"guide_latents": args.guide_latents} if args.guide_latents else {}),
             **({"precision": args.precision} if args.precision else {})} or None
    rows = run_bench(args.cases, args.methods, repeats=args.repeats, device=args.device, extra=extra, io=args.io,
                     size=args.size, frames=args.frames, inputs=inputs, segment=args.segment,
                     on_row=lambda row: print(f"done: {row.case} {row.method} {row.median_seconds['total']:.2f} s",
                                              flush=True))
    print(markdown_table(rows))
    if args.segment:
        print(segment_lines(rows))
    ratios = speed_ratios(rows)
    if ratios:
        print(ratio_lines(ratios))
    on_cpu = cpu_stages(args.methods, extra, args.io)
    print("on the CPU whatever the device: " + "; ".join(f"{k}: {v}" for k, v in on_cpu.items()))
    if args.json:
        from calid.io.paths import atomic_path  # light: no SimpleITK (the device's bench --io npy writes JSON too)

        document = {"environment": collect(), "rows": rows_as_dicts(rows), "ratios": ratios, "cpu_stages": on_cpu,
                    "settings": {"io": args.io, "size": args.size, "frames": args.frames, "guide": args.guide, "repeats": args.repeats}}
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
