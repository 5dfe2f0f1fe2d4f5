"""Reconstruct a whole cohort: a folder of studies or a CSV manifest, resumable and shardable.

A case counts as finished when its JSON report exists: the report is written last, after the
volume, so an interrupted run redoes only the cases that did not finish. Sharding splits the
sorted case list by ``index::count``; under ``torchrun`` the shard comes from RANK/WORLD_SIZE,
so N processes (GPUs, nodes) share a cohort without talking to each other.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from calid.errors import CalidError, InputError
from calid.io.paths import atomic_path, compound_suffix
from calid.io.report import report_path

#: Files a cohort folder may hold as studies (segmentations are not studies).
STUDY_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".seq.nrrd")


@dataclass(frozen=True)
class CohortCase:
    source: Path
    output: Path


@dataclass
class CaseOutcome:
    source: str
    output: str
    status: str  # "done", "skipped" (finished earlier) or "failed"
    seconds: float = 0.0
    error: str = ""


def _stem(path: Path) -> str:
    suffix = compound_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def cases_from_folder(folder: Path, output_dir: Path, pattern: str = "*", suffix: str = ".nii.gz") -> list[CohortCase]:
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and compound_suffix(p) in STUDY_SUFFIXES)
    if not files:
        raise InputError(f"no studies matching {pattern!r} with suffix {', '.join(STUDY_SUFFIXES)} in {folder}; "
                         "check the folder or pass --pattern")
    return [CohortCase(f, output_dir / f"{_stem(f)}_dense{suffix}") for f in files]


def cases_from_manifest(manifest: Path, output_dir: Path, suffix: str = ".nii.gz") -> list[CohortCase]:
    """CSV with a column ``input`` (and optionally ``output``); relative paths are relative to the CSV."""
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "input" not in rows[0]:
        raise InputError(f"manifest {manifest} must be a CSV with a header row naming an 'input' column")
    cases = []
    for row in rows:
        source = Path(row["input"])
        source = source if source.is_absolute() else manifest.parent / source
        output = Path(row["output"]) if row.get("output") else output_dir / f"{_stem(source)}_dense{suffix}"
        cases.append(CohortCase(source, output if output.is_absolute() else output_dir / output))
    return cases


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); None -> torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    if text is None:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as err:
        raise InputError(f"shard must look like I/N (e.g. 0/4), not {text!r}") from err
    if not 0 <= index < count:
        raise InputError(f"shard index must be in [0, {count}), not {index}")
    return index, count


def is_finished(case: CohortCase) -> bool:
    return case.output.exists() and report_path(case.output).exists()


def run_cohort(cases: list[CohortCase], reconstruct_one: Callable[[CohortCase], None], *,
               shard: tuple[int, int] = (0, 1), on_case: Callable[[CaseOutcome], None] | None = None) -> list[CaseOutcome]:
    """Run ``reconstruct_one`` on this shard's unfinished cases; a failing case does not stop the rest."""
    index, count = shard
    outcomes = []
    for case in cases[index::count]:
        started = time.perf_counter()
        if is_finished(case):
            outcome = CaseOutcome(str(case.source), str(case.output), "skipped")
        else:
            try:
                case.output.parent.mkdir(parents=True, exist_ok=True)
                reconstruct_one(case)
                outcome = CaseOutcome(str(case.source), str(case.output), "done")
            except (CalidError, OSError, ValueError) as err:
                outcome = CaseOutcome(str(case.source), str(case.output), "failed", error=str(err))
        outcome.seconds = round(time.perf_counter() - started, 3)
        outcomes.append(outcome)
        if on_case is not None:
            on_case(outcome)
    return outcomes


def write_summary(outcomes: list[CaseOutcome], output_dir: Path, shard: tuple[int, int]) -> Path:
    path = output_dir / f"cohort_summary_{shard[0]}of{shard[1]}.json"
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"counts": counts, "cases": [asdict(o) for o in outcomes]}, indent=2) + "\n")
    return path
