"""Print what a lent-GPU call carries (the working tree git would send plus carried paths) against its 64 MiB.

    python benchmarks/device/budget.py .whl devdata      # exit status 1 when over the limit

The working tree counts tracked files and untracked files git does not ignore (what the
device tool sends); each carried path counts in full. Sizes are of the files here now.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIMIT_MIB = 64.0


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) of tracked plus untracked-not-ignored files under ``root``."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             check=True, capture_output=True).stdout.decode().split("\0")
    paths = [root / name for name in listing if name and (root / name).is_file()]
    return len(paths), sum(p.lstat().st_size for p in paths)


def path_bytes(path: Path) -> int:
    if path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def main(carried: list[str]) -> int:
    root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True, capture_output=True,
                               text=True).stdout.strip())
    count, size = tree_bytes(root)
    lines = [(f"working tree ({count} files, models included)", size)]
    for name in carried:
        path = root / name
        if not path.exists():
            print(f"carried path {name} does not exist: run benchmarks/device/prepare.sh first", file=sys.stderr)
            return 1
        lines.append((f"carried {name}", path_bytes(path)))
    total = sum(b for _, b in lines) / 2**20
    for label, b in lines:
        print(f"{label:<48} {b / 2**20:8.2f} MiB")
    verdict = "OK" if total < LIMIT_MIB else "OVER THE LIMIT"
    print(f"{'total that travels':<48} {total:8.2f} MiB of {LIMIT_MIB:.0f} MiB: {verdict} ({LIMIT_MIB - total:.2f} MiB left)")
    return 0 if total < LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
