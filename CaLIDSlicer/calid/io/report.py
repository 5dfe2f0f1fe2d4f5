"""The JSON record written beside every output: what was measured and what was synthesised."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from calid import __version__
from calid.methods.reconstruction import ReconstructionResult
from calid.io.volume import Volume


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


def report_dict(result: ReconstructionResult, source: Path | None = None, output: Path | None = None) -> dict:
    """Everything needed to tell acquired from synthesised slices and to reproduce the run."""
    dense = result.volume
    return {
        "calid_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "input": str(source) if source else None,
        "output": str(output) if output else None,
        "method": result.method,
        "mode": result.mode,
        "factor": result.factor,
        "seed": result.seed,
        "sampler": {k: str(v) if isinstance(v, Path) else v for k, v in result.sampler.items()},
        "acquired_slices": list(dense.acquired),
        "synthesized_slices": list(dense.synthesized),
        "geometry": _geometry(dense),
        "seconds": round(result.seconds, 4),
        "stage_seconds": {k: round(v, 4) for k, v in result.stage_seconds.items()},
        "notes": list(result.notes),
    }


def write_report(result: ReconstructionResult, path: Path, source: Path | None = None, output: Path | None = None) -> Path:
    from calid.io.paths import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report_dict(result, source, output), indent=2) + "\n")
    return Path(path)
