"""Every check ``calid reconstruct`` can make before the work starts, so a long run never fails at its end.

Output paths and formats (a cine's labels cannot go into a .seg.nrrd), ``--uncertainty`` with
its ``--samples``, the segmenter model, and free disk space for all outputs together.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from calid.errors import InputError, OutputError
from calid.io.volume import Volume

#: Bytes kept for a JSON report / a QC figure in the free-space check.
REPORT_BYTES = 1 << 16
FIGURE_BYTES = 4 << 20


def output_paths(args: argparse.Namespace) -> dict[str, Path]:
    """Option -> file for every output this run writes (the report included)."""
    from calid.io.report import report_path

    from calid.io.qc_figure import qc_path

    paths = {"-o": args.output, "--uncertainty": args.uncertainty, "--segment": args.segment,
             "--report": args.report or report_path(args.output),
             "the QC figure": qc_path(args.output) if getattr(args, "qc", True) else None}
    return {option: Path(path) for option, path in paths.items() if path is not None}


def check_arguments(args: argparse.Namespace) -> None:
    """Checks that need no input data: paths, --uncertainty, the segmenter model."""
    from calid.io.paths import compound_suffix
    from calid.io.validate import check_output_path

    paths = output_paths(args)
    for path in paths.values():
        check_output_path(args.input, path)
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path.resolve() in seen:
            raise OutputError(f"{seen[path.resolve()]} and {option} both name {str(path)!r}; give each output its own file")
        seen[path.resolve()] = option
    if compound_suffix(paths["--report"]) != ".json":
        raise OutputError(f"the report is JSON: --report must end in .json, not {paths['--report'].name!r}")
    if args.uncertainty is not None:
        _check_uncertainty(args)
    if args.segment is not None:
        from calid.models.search import find_model
        from calid.segmentation.inference import DEFAULT_MODEL

        find_model(DEFAULT_MODEL)  # ModelError names `calid models fetch` / `import`


def _check_uncertainty(args: argparse.Namespace) -> None:
    from calid.methods.reconstruction import resolve_method

    method, notes = resolve_method(args.method)
    if method != "calid":
        why = f" ({notes[0]})" if notes else ""
        raise InputError(f"--uncertainty needs --method calid (a diffusion method); {method!r} makes a single image{why}")
    if (args.samples or 1) < 2:
        raise InputError("--uncertainty needs --samples 2 or more (the map is the spread over samples), e.g. --samples 4")


def check_volume(args: argparse.Namespace, volume: Volume, factor: int) -> None:
    """Checks that need the input's shape: output formats, and disk space for every output together."""
    from calid.io.read_write import check_write_format
    from calid.io.validate import check_free_disk
    from calid.methods.output_dtype import output_dtype

    check_write_format(args.output, cine=volume.is_cine)
    if args.uncertainty is not None:
        check_write_format(args.uncertainty, cine=volume.is_cine)
    if args.segment is not None:
        check_write_format(args.segment, cine=volume.is_cine, labels=True)
    voxels = volume.n_frames * volume.dense_slice_count(factor) * int(np.prod(volume.slice_shape))
    per_voxel = {"-o": output_dtype(volume.array.dtype).itemsize, "--uncertainty": 4, "--segment": 1}
    fixed = {"--report": REPORT_BYTES, "the QC figure": FIGURE_BYTES}
    needs = {path: voxels * per_voxel.get(option, 0) + fixed.get(option, 0) for option, path in output_paths(args).items()}
    check_free_disk(needs)
