"""``index.html`` of a cohort folder: every case with its QC figure, timings and measures.

A cohort of hundreds of studies is checked by eye case after case; one page that shows each
case's QC figure beside what its report says (method, slices, seconds per stage, notes, and
whatever measures it holds) makes that a scroll instead of a file hunt. The page is rebuilt
from the files on disk after every run, so it also lists cases finished by earlier runs or
other shards, and says which are not done yet. Links are relative: the folder can be moved.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from calid.io.cohort import CaseOutcome, CohortCase
from calid.io.qc_figure import qc_path
from calid.io.report import report_path

#: Report fields shown as columns, in order, with their headers.
REPORT_FIELDS = {"method": "method", "mode": "mode", "factor": "factor", "seconds": "seconds"}
STYLE = """body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}
td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top;text-align:left}
.failed{background:#fde0dc}.pending{color:#777}img{width:640px}small{color:#555}"""


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()


def _read_report(output: Path) -> dict:
    path = report_path(output)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _status(case: CohortCase, outcome: CaseOutcome | None, report: dict) -> tuple[str, str]:
    """(status, error): this run's outcome when there is one, else what the files say."""
    if outcome is not None and outcome.status == "skipped":
        return "finished earlier", ""
    if outcome is not None:
        return f"{outcome.status} ({outcome.seconds:.1f} s wall)", outcome.error
    return ("done" if report and case.output.exists() else "not run yet"), ""


def _details(report: dict) -> str:
    """Stage timings, measures and notes of a report as small HTML lines."""
    lines = []
    stages = report.get("stage_seconds") or {}
    if stages:
        lines.append("stages: " + ", ".join(f"{html.escape(str(k))} {float(v):.1f} s" for k, v in stages.items()))
    if report.get("synthesized_slices") is not None:
        lines.append(f"{len(report.get('acquired_slices') or [])} acquired, "
                     f"{len(report['synthesized_slices'])} synthesised slices")
    measures = report.get("measures") or {}
    if isinstance(measures, dict):
        lines += [f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in measures.items()]
    lines += [f"note: {html.escape(str(n))}" for n in report.get("notes") or []]
    return "<br>".join(lines)


def index_html(cases: list[CohortCase], outcomes: list[CaseOutcome], folder: Path) -> str:
    """The page for ``cases`` (all shards); ``outcomes`` (this run's) give statuses and errors."""
    by_source = {o.source: o for o in outcomes}
    rows = []
    counts: dict[str, int] = {}
    for case in cases:
        report = _read_report(case.output)
        status, error = _status(case, by_source.get(str(case.source)), report)
        counts[status.split(" (")[0]] = counts.get(status.split(" (")[0], 0) + 1
        figure = qc_path(case.output)
        if figure.exists():
            link = html.escape(_relative(figure, folder))
            picture = f'<a href="{link}"><img src="{link}" alt="QC figure of {html.escape(case.source.name)}"></a>'
        else:
            picture = "<small>no QC figure</small>"
        output = (f'<a href="{html.escape(_relative(case.output, folder))}">{html.escape(case.output.name)}</a>'
                  if case.output.exists() else html.escape(case.output.name))
        cells = "".join(f"<td>{html.escape(str(report.get(k, '')))}</td>" for k in REPORT_FIELDS)
        css = "failed" if status.startswith("failed") else "pending" if status == "not run yet" else ""
        rows.append(f'<tr class="{css}"><td>{html.escape(case.source.name)}<br><small>{output}</small></td>'
                    f"<td>{html.escape(status)}<br><small>{html.escape(error)}</small></td>{cells}"
                    f"<td><small>{_details(report)}</small></td><td>{picture}</td></tr>")
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    header = "".join(f"<th>{h}</th>" for h in ("case", "status", *REPORT_FIELDS.values(), "details", "QC figure"))
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>CaLID cohort</title>'
            f"<style>{STYLE}</style></head><body>\n<h1>CaLID cohort: {len(cases)} cases</h1>\n<p>{summary}. "
            "Blue frames in a figure are acquired slices, orange ones synthesised; "
            "seconds are the reconstruction's (see each case's .calid.json).</p>\n"
            f"<table>\n<tr>{header}</tr>\n" + "\n".join(rows) + "\n</table></body></html>\n")


def write_index(cases: list[CohortCase], outcomes: list[CaseOutcome], folder: Path) -> Path:
    """Write ``folder/index.html`` atomically and return its path."""
    from calid.io.paths import atomic_path

    path = Path(folder) / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(index_html(cases, outcomes, Path(folder)), encoding="utf-8")
    return path
