"""The JSON record written beside every output: what was measured and what was synthesised."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from typing import TYPE_CHECKING

from calid.io.provenance import provenance
from calid.methods.reconstruction import ReconstructionResult
from calid.io.volume import Volume

if TYPE_CHECKING:
    from calid.segmentation.inference import SegmentationResult


def report_path(output: Path) -> Path:
    """``dense.nii.gz`` -> ``dense.calid.json`` beside it."""
    from calid.io.paths import compound_suffix

    output = Path(output)
    suffix = compound_suffix(output)
    stem = output.name[: -len(suffix)] if suffix else output.name
    return output.with_name(stem + ".calid.json")


def _geometry(volume: Volume) -> dict:
    return {
        "shape": list(volume.array.shape),
        "spacing_mm": list(volume.spacing),
        "origin_lps_mm": list(volume.origin),
        "direction": volume.direction.tolist(),
        "frames": volume.n_frames,
    }


def run_provenance(result: ReconstructionResult, segmentation: SegmentationResult | None = None,
                   timings: dict[str, float] | None = None) -> dict:
    """The :func:`calid.io.provenance.provenance` record of a reconstruction (and its segmentation, if one ran).

    ``timings``: stages timed outside :func:`calid.reconstruct`, e.g. ``read`` and ``write``.
    """
    models, stages, device = list(result.models), dict(result.stage_seconds), result.device
    if segmentation is not None:
        models += list(segmentation.models)
        stages["segment"] = segmentation.seconds
        device = device if result.models else segmentation.device  # where the networks ran
    return provenance(models, result.sampler, device, {**stages, **(timings or {})})


def report_dict(result: ReconstructionResult, source: Path | None = None, output: Path | None = None,
                segmentation: SegmentationResult | None = None, timings: dict[str, float] | None = None) -> dict:
    """Everything needed to tell acquired from synthesised slices and to reproduce the run.

    The provenance fields (calid_version, models, sampler, device, stage_seconds) come from
    :func:`run_provenance`, the record every report shares.
    """
    dense = result.volume
    record = run_provenance(result, segmentation, timings)
    return {
        "calid_version": record["calid_version"],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "input": str(source) if source else None,
        "output": str(output) if output else None,
        "method": result.method,
        "mode": result.mode,
        "factor": result.factor,
        "seed": result.seed,
        "models": record["models"],
        "sampler": record["sampler"],
        "device": record["device"],
        "acquired_slices": list(dense.acquired),
        "synthesized_slices": list(dense.synthesized),
        "geometry": _geometry(dense),
        "seconds": round(result.seconds, 4),
        "stage_seconds": record["stage_seconds"],
        "notes": list(result.notes),
    }


def write_report(result: ReconstructionResult, path: Path, source: Path | None = None, output: Path | None = None,
                 segmentation: SegmentationResult | None = None, timings: dict[str, float] | None = None) -> Path:
    from calid.io.paths import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report_dict(result, source, output, segmentation, timings), indent=2) + "\n")
    return Path(path)
