"""``calid info FILE``: what a file holds (kind, shape, geometry, frame times, synthesised slices)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "describe an image file or DICOM folder: shape, spacing, geometry, frame times"
DESCRIPTION = (
    "Print what calid reads from FILE (NIfTI, NRRD, MetaImage, Slicer .seq.nrrd/.seg.nrrd, or a DICOM folder): "
    "3D stack or cine, shape and spacing (both in x, y, z order), origin and direction (LPS), frame times and which slices were synthesised (from the file, or from the NAME.calid.json report beside it; \"unknown\" when neither says). In --json, direction_lps is the 3x3 matrix as rows; its columns are the index axes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="image file or DICOM folder")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def describe(volume) -> dict:
    """The facts ``calid info`` prints, as plain JSON-ready values."""
    times = volume.frame_times
    return {
        "kind": "cine" if volume.is_cine else "3D",
        "axis_order": "x, y, z",  # shape and spacing alike; frames apart
        "shape": list(volume.array.shape[::-1][:3]),
        "dtype": str(volume.array.dtype),
        "spacing_mm": list(volume.spacing),
        "origin_lps_mm": list(volume.origin),
        "direction_lps": volume.direction.tolist(),
        "frames": volume.n_frames,
        "frame_times_ms": [min(times), max(times)] if times and volume.time_unit != "unknown" else None,
        **({"frame_times_unit_unknown": [min(times), max(times)]} if times and volume.time_unit == "unknown" else {}),
        "synthesized_slices": list(volume.synthesized),
    }


def synthesized_slices(path: Path, volume) -> tuple[list[int] | None, str]:
    """(synthesised slice indices or None, where that is known from).

    From the file's own metadata (NRRD, MetaImage, .seq.nrrd), else from the ``.calid.json``
    report beside it (NIfTI holds no such metadata) if it describes a volume of this shape;
    otherwise unknown: an empty list would wrongly say that every slice was acquired.
    """
    import json

    from calid.io.report import report_path

    if volume.synthesized:
        return list(volume.synthesized), "file metadata"
    report = report_path(path) if path.is_file() else None
    if report is None or not report.is_file():
        return None, "unknown (no report found)"
    try:
        data = json.loads(report.read_text())
        slices, shape = [int(i) for i in data["synthesized_slices"]], list(data["geometry"]["shape"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"unknown (the report {report} is unreadable)"
    if shape != list(volume.array.shape):
        return None, f"unknown (the report {report} describes a {shape} volume, not this file's {list(volume.array.shape)})"
    return slices, str(report)


def _format(key: str, value) -> str:
    if key == "direction_lps":
        return "  ".join("(" + ", ".join(f"{v:.4f}" for v in column) + ")" for column in zip(*value)) + "  (columns)"
    if key in ("frame_times_ms", "frame_times_unit_unknown") and value:
        return f"{value[0]:.6g} to {value[1]:.6g}"
    if key == "shape" or (isinstance(value, list) and value and isinstance(value[0], float)):
        return "(" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + ")"
    if value in (None, []):
        return "none"
    return str(value)


def run(args: argparse.Namespace) -> int:
    import json

    from calid.io.read_write import read

    volume = read(args.file)
    info = {"file": str(args.file), **describe(volume)}
    info["synthesized_slices"], info["synthesized_from"] = synthesized_slices(args.file, volume)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    source = info.pop("synthesized_from")
    slices = info.pop("synthesized_slices")
    if slices is None:
        info["synthesized_slices"] = source
    else:
        info["synthesized_slices"] = f"{', '.join(map(str, slices)) or 'none'} (from {source})"
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {_format(key, value)}")
    return 0
