"""How well the segmenter does on expert labels: 3D Dice and HD95 per structure, and the error of the
volumes, ejection fractions and LV mass computed from its labels (``python -m calid.evaluation.segmenter DATA``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calid.errors import InputError
from calid.segmentation.inference import flip_count, load_segmenter, resolve_device, segment_array
from calid.segmentation.labels import CARDIAC_STRUCTURES

if TYPE_CHECKING:
    from calid.progress import Progress, ProgressMode

MEASURE_KEYS = ("lv_edv", "lv_esv", "lv_ef", "rv_edv", "rv_esv", "rv_ef", "lv_mass")


def evaluate_segmenter(
    data_dir: str | os.PathLike,
    split: str = "test",
    *,
    model: str | os.PathLike | None = None,
    device: str = "auto",
    keep_largest: bool = True,
    flips: int | None = None,
    average_flips: bool | None = None,
    progress: "Progress | ProgressMode | None" = None,
) -> dict:
    """3D Dice and HD95 per structure on every labelled ED/ES stack of ``split``, and the error of
    LV/RV volumes, EF and LV mass computed from the segmentation against the expert labels."""
    from calid.evaluation.datasets import find_cases, load_case
    from calid.evaluation.metrics import dice, hd95
    from calid.progress import as_progress

    flips = flip_count(flips, average_flips)
    device = resolve_device(device)
    network, name = load_segmenter(model, device)
    cases = [case for case in find_cases(data_dir, split) if case.kind == "3d" and case.label_path is not None]
    if not cases:
        raise InputError(f"no labelled 3D stacks of split {split!r} in {data_dir}; give an ACDC folder")
    rows, pairs = [], {}
    with as_progress(progress).stage("evaluate segmenter", total=len(cases)) as stage:
        for case in cases:
            loaded = load_case(case)
            predicted = segment_array(loaded.volume, network, device=device, keep_largest=keep_largest, flips=flips)
            spacing_zyx = loaded.volume.spacing[::-1]
            row = {"case": case.name, "patient": case.patient, "group": case.group, "phase": case.name[-2:]}
            for item in CARDIAC_STRUCTURES:
                row[f"dice_{item.value}"] = dice(predicted, loaded.labels, item.value)
                row[f"hd95_{item.value}"] = hd95(predicted, loaded.labels, item.value, spacing_zyx)
            rows.append(row)
            pairs.setdefault(case.patient, {})[case.name[-2:]] = (predicted, loaded.labels, loaded.volume)
            stage.advance()
    return {"model": name, "split": split, "data": str(data_dir), "keep_largest": keep_largest,
            "flips": flips, "average_flips": flips > 1,
            "structures": {str(s.value): s.name for s in CARDIAC_STRUCTURES},
            "summary": _summary(rows), "by_phase": {phase: _summary([r for r in rows if r["phase"] == phase])
                                                    for phase in sorted({r["phase"] for r in rows})},
            "measures": _measure_errors(pairs), "cases": rows}


def _summary(rows: list[dict]) -> dict:
    """Mean, standard deviation and count (NaN-free) of every Dice and HD95 column."""
    summary = {}
    for key in rows[0] if rows else ():
        if key.startswith(("dice_", "hd95_")):
            values = np.array([row[key] for row in rows], dtype=float)
            summary[key] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values)),
                            "n": int(np.isfinite(values).sum())}
    return summary


def _measure_errors(pairs: dict) -> dict:
    """Per patient with both ED and ES: measures from the prediction and from the expert labels."""
    from calid.segmentation.measures import measure

    patients = {}
    for patient, phases in sorted(pairs.items()):
        if set(phases) != {"ED", "ES"}:
            continue
        found = [phases[p][2].replace(array=phases[p][0]) for p in ("ED", "ES")]
        truth = [phases[p][2].replace(array=phases[p][1]) for p in ("ED", "ES")]
        ours, reference = measure(found, ed=0, es=1).summary(), measure(truth, ed=0, es=1).summary()
        patients[patient] = {key: {"segmentation": ours[key], "labels": reference[key]} for key in MEASURE_KEYS}
    errors = {}
    for key in MEASURE_KEYS:
        diffs = np.array([p[key]["segmentation"] - p[key]["labels"] for p in patients.values()], dtype=float)
        errors[key] = {"mae": float(np.mean(np.abs(diffs))) if len(diffs) else None,
                       "bias": float(np.mean(diffs)) if len(diffs) else None, "n": len(diffs)}
    return {"errors": errors, "patients": patients}


def _main(argv: list[str] | None = None) -> int:
    """``python -m calid.evaluation.segmenter DATA [--split test] [--json FILE]``: measure a segmenter on ACDC."""
    import argparse
    import json

    from calid.io.jsonable import json_safe
    from calid.io.paths import atomic_path

    parser = argparse.ArgumentParser(prog="python -m calid.evaluation.segmenter", description=evaluate_segmenter.__doc__)
    parser.add_argument("data", help="ACDC folder (patientNNN_ED.nii.gz with _gt labels)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    parser.add_argument("--model", help="model directory or installed name (default: the bundled model)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-largest", action="store_true", help="keep every connected piece of each structure")
    parser.add_argument("--flips", type=int, choices=(1, 2, 4), help="mirror images averaged per slice (default: calid segment's)")
    parser.add_argument("--no-flips", action="store_true", help="the same as --flips 1")
    parser.add_argument("--json", type=Path, help="write the full results here")
    args = parser.parse_args(argv)
    results = evaluate_segmenter(args.data, args.split, model=args.model, device=args.device,
                                 keep_largest=not args.no_largest, flips=1 if args.no_flips else args.flips, progress="bar")
    results = json_safe(results)
    if args.json is not None:
        with atomic_path(args.json) as temp:
            temp.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({key: results[key] for key in ("model", "split", "summary", "by_phase")}, indent=1))
    print(json.dumps({"measure_errors": results["measures"]["errors"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
