"""``calid env``: versions and devices, for bug reports."""

from __future__ import annotations

import argparse

HELP = "print versions of calid and its libraries, and the devices found"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _version(module: str) -> str:
    import importlib

    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except ImportError:
        return "not installed"


def collect() -> dict:
    import platform

    import calid

    info = {"calid": calid.__version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "torch", "monai", "SimpleITK", "nrrd", "slicerio", "safetensors", "scipy"):
        info[name] = _version(name)
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        info["cpu_threads"] = torch.get_num_threads()
        from calid.methods.precision import resolve_precision

        info["precision_auto"] = {device: resolve_precision("auto", device)  # what --precision auto runs here
                                  for device in ("cpu", *(("cuda",) if torch.cuda.is_available() else ()))}
    except ImportError:
        info["cuda"] = "unknown (torch not installed)"
    return info


def run(args: argparse.Namespace) -> int:
    import json

    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0
