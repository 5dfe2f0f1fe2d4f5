"""The ``calid`` command: a thin dispatcher over :mod:`calid.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from calid import __version__
from calid.errors import CalidError

#: command name -> module in calid.commands. Order is the order of ``calid --help``.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "reconstruct": "reconstruct",
    "phantom": "phantom",
    "evaluate": "evaluate",
    "bench": "bench",
    "train": "train",
    "export-trainset": "export_trainset",
    "models": "models",
    "segment": "segment",
    "info": "info",
    "env": "env",
}


def _available_commands() -> dict[str, object]:
    """Import the command modules that exist (later issues add more)."""
    found = {}
    for name, module in COMMANDS.items():
        try:
            found[name] = importlib.import_module(f"calid.commands.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"calid.commands.{module}":
                raise
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calid",
        description="CaLID: dense cardiac MR volumes from sparse short-axis slices.",
    )
    parser.add_argument("--version", action="version", version=f"calid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands().items():
        cmd = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except CalidError as err:
        print(f"calid {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"calid {args.command}: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`calid ... | head`): stop quietly, as `cat` would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
