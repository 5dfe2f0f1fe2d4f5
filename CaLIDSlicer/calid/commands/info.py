"""``calid info FILE``: what a file holds (kind, shape, geometry, frame times, synthesised slices)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "describe an image file or DICOM folder: shape, spacing, geometry, frame times"
DESCRIPTION = (
    "Print what calid reads from FILE (NIfTI, NRRD, MetaImage, Slicer .seq.nrrd/.seg.nrrd, or a DICOM folder): "
    "3D stack or cine, shape, spacing, origin and direction (LPS), frame times and which slices were synthesised. In --json, direction_lps is the 3x3 matrix as rows; its columns are the index axes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="image file or DICOM folder")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def describe(volume) -> dict:
    """The facts ``calid info`` prints, as plain JSON-ready values."""
    times = volume.frame_times
    return {
        "kind": "cine" if volume.is_cine else "3D",
        "shape": list(volume.array.shape),
        "axes": "TZYX" if volume.is_cine else "ZYX",
        "dtype": str(volume.array.dtype),
        "spacing_mm": list(volume.spacing),
        "origin_lps_mm": list(volume.origin),
        "direction_lps": volume.direction.tolist(),
        "frames": volume.n_frames,
        "frame_times_ms": [min(times), max(times)] if times else None,
        "synthesized_slices": list(volume.synthesized),
    }


def _format(key: str, value) -> str:
    if key == "direction_lps":
        return "  ".join("(" + ", ".join(f"{v:.4f}" for v in column) + ")" for column in zip(*value)) + "  (columns)"
    if key == "frame_times_ms" and value:
        return f"{value[0]:.4g} to {value[1]:.4g}"
    if isinstance(value, list) and value and isinstance(value[0], float):
        return "(" + ", ".join(f"{v:.4g}" for v in value) + ")"
    if value in (None, []):
        return "none"
    return str(value)


def run(args: argparse.Namespace) -> int:
    import json

    from calid.io.read_write import read

    info = {"file": str(args.file), **describe(read(args.file))}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {_format(key, value)}")
    return 0
