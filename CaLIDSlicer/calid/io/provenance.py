"""How a result was made, in one shape for every report: models, sampler, device, calid version, stage times.

The ``.calid.json`` beside each reconstruction, the ``calid evaluate`` JSON (once per
method) and the Slicer results table all take this record from :func:`provenance`, so a
reader finds the same fields, with the same names, wherever a result went. Loads no torch.
"""

from __future__ import annotations

import functools
import platform
import sys
from pathlib import Path

#: Stages in the order a run passes through them; stages not named here follow in the order they ran.
STAGE_ORDER = ("read", "load", "encode", "register", "interpolate", "sample", "decode", "segment", "write")


def _stage_rank(name: str) -> int:
    base = name.split(" ", 1)[0]  # "interpolate (linear)" ranks as "interpolate"
    return STAGE_ORDER.index(base) if base in STAGE_ORDER else len(STAGE_ORDER)


def ordered_stages(stage_seconds: dict[str, float]) -> dict[str, float]:
    """Stage times in pipeline order, rounded to 0.1 ms."""
    names = sorted(stage_seconds, key=_stage_rank)  # sorted() is stable: unknown stages keep their order
    return {name: round(float(stage_seconds[name]), 4) for name in names}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _torch_version() -> str | None:
    """torch's version without importing it (a baseline run never loads torch)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(torch.__version__)
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("torch")
    except PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=8)
def _device_info(device: str) -> tuple[tuple[str, str | None], ...]:
    kind, _, index = device.partition(":")
    if kind == "cuda":
        import torch

        name = torch.cuda.get_device_name(int(index) if index else torch.cuda.current_device())
    else:
        name = _cpu_name()
    return (("type", kind), ("name", name), ("torch", _torch_version()))


def device_info(device: str) -> dict:
    """``{type: "cpu" | "cuda", name, torch}``: the hardware a run used and the torch version installed."""
    return dict(_device_info(str(device)))


def provenance(models: list[dict] | tuple[dict, ...], sampler: dict, device: str, stage_seconds: dict[str, float]) -> dict:
    """The provenance record every report holds (see the module docstring).

    ``models``: identities from :func:`calid.models.identity.identity_of` (empty for a
    classical method); ``sampler``: the CaLID sampler's settings (empty for a baseline);
    ``device``: where the networks ran ("cpu", "cuda", "cuda:1"); ``stage_seconds``:
    seconds per stage (read, load, encode, register, sample, decode, segment, write).
    """
    from calid import __version__

    return {
        "calid_version": __version__,
        "models": [dict(m) for m in models],
        "sampler": {k: str(v) if isinstance(v, Path) else v for k, v in sampler.items()},
        "device": device_info(device),
        "stage_seconds": ordered_stages(stage_seconds),
    }


def provenance_rows(record: dict) -> list[tuple[str, str]]:
    """(item, value) rows for a results table (the Slicer module's), from a record of :func:`provenance`."""
    rows = [("calid version", str(record["calid_version"]))] if "calid_version" in record else []
    models = record.get("models")
    if models is not None:  # a report from before provenance has no "models" at all: say nothing then
        rows += [(f"Model ({m.get('kind', 'model')})", f"{m.get('name')} {m.get('version')}, SHA-256 {m.get('sha256')}")
                 for m in models] or [("Models", "none (classical method)")]
    sampler = record.get("sampler") or {}
    if sampler:
        rows.append(("Sampler", ", ".join(f"{k} {v}" for k, v in sampler.items() if v is not None)))
    device = record.get("device") or {}
    if device:
        torch = f", torch {device['torch']}" if device.get("torch") else ""
        rows.append(("Device", f"{device.get('type')} ({device.get('name')}){torch}"))
    rows += [(f"Time: {stage} (s)", f"{seconds:.2f}") for stage, seconds in (record.get("stage_seconds") or {}).items()]
    return rows
