"""Training checkpoints split into parts small enough to come back from a lent machine, and joined again.

A lent GPU machine returns at most 8 files of 16 MiB (64 MiB in all), while a checkpoint
(weights + AdamW's two moments) of a large network is 12 bytes a parameter. :func:`pack`
stores the moments as bfloat16 (same exponent range as float32, so nothing under- or
overflows; 8 bytes a parameter in all), splits the tensors over parts of at most
``max_bytes``, and puts the checkpoint's JSON state into the first part's metadata.
:func:`unpack` writes an ordinary run folder that ``calid train ... --resume`` continues.

    python -m calid.train.pack pack RUN_DIR DEST NAME      # DEST/NAME-1of3.safetensors ...
    python -m calid.train.pack unpack DEST NAME RUN_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from calid.train.checkpoint import STATE, WEIGHTS

#: A part's limit: the 16 MiB a returned file may have.
MAX_PART_BYTES = 16 * 2**20
MOMENTS = ("exp_avg", "exp_avg_sq")


def _is_moment(key: str) -> bool:
    return key.startswith("optim.") and key.rsplit(".", 1)[-1] in MOMENTS


def pack(run_dir: Path, dest: Path, name: str, max_bytes: int = MAX_PART_BYTES) -> list[Path]:
    """Write ``dest/NAME-KofN.safetensors`` from ``run_dir``'s checkpoint; returns the parts."""
    from safetensors.torch import load_file, save_file

    if not (run_dir / STATE).is_file() or not (run_dir / WEIGHTS).is_file():
        raise FileNotFoundError(f"{run_dir} holds no complete checkpoint ({WEIGHTS} and {STATE})")
    state = (run_dir / STATE).read_text()
    tensors = load_file(str(run_dir / WEIGHTS))
    stored = {key: (value.to(torch.bfloat16) if _is_moment(key) and value.dtype == torch.float32 else value).contiguous()
              for key, value in tensors.items()}
    groups: list[dict[str, torch.Tensor]] = []
    used: list[int] = []
    room = max_bytes - 65536  # the JSON header (names, shapes, the state) stays well under this
    for key in sorted(stored, key=lambda k: (-stored[k].numel() * stored[k].element_size(), k)):  # first fit, largest first
        size = stored[key].numel() * stored[key].element_size()
        if size > room:
            raise ValueError(f"tensor {key} alone ({size} bytes) is over the part limit of {max_bytes} bytes")
        index = next((i for i, u in enumerate(used) if u + size <= room), None)
        if index is None:
            groups.append({})
            used.append(0)
            index = len(groups) - 1
        groups[index][key] = stored[key]
        used[index] += size
    dest.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, group in enumerate(groups, start=1):
        path = dest / f"{name}-{index}of{len(groups)}.safetensors"
        meta = {"format": "calid-checkpoint-part", "part": str(index), "parts": str(len(groups)), "moments": "bfloat16"}
        if index == 1:
            meta["state"] = state
        save_file(group, str(path), metadata=meta)
        if path.stat().st_size > max_bytes:
            raise ValueError(f"{path} came out at {path.stat().st_size} bytes, over {max_bytes}")
        parts.append(path)
    return parts


def unpack(dest: Path, name: str, run_dir: Path) -> int:
    """Join ``dest/NAME-*of*.safetensors`` into ``run_dir``'s checkpoint (moments back to float32); returns its step."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    parts = sorted(dest.glob(f"{name}-*of*.safetensors"))
    if not parts:
        raise FileNotFoundError(f"no {name}-KofN.safetensors parts in {dest}")
    tensors: dict[str, torch.Tensor] = {}
    state = None
    expected = None
    for path in parts:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            expected = int(meta.get("parts", 0))
            state = meta.get("state", state)
            for key in handle.keys():
                value = handle.get_tensor(key)
                tensors[key] = value.float() if _is_moment(key) else value
    if expected != len(parts) or state is None:
        raise ValueError(f"{dest} holds {len(parts)} of {expected} parts of {name} (or no state): copy all of them")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(run_dir / (WEIGHTS + ".tmp")))
    os.replace(run_dir / (WEIGHTS + ".tmp"), run_dir / WEIGHTS)
    (run_dir / (STATE + ".tmp")).write_text(state)
    os.replace(run_dir / (STATE + ".tmp"), run_dir / STATE)
    return int(json.loads(state)["step"])


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "pack":
        for path in pack(Path(argv[1]), Path(argv[2]), argv[3]):
            print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
        return 0
    if len(argv) == 4 and argv[0] == "unpack":
        step = unpack(Path(argv[1]), argv[2], Path(argv[3]))
        print(f"wrote {argv[3]}: checkpoint at step {step}; continue with calid train ... --out {argv[3]} --resume")
        return 0
    print("usage: python -m calid.train.pack pack RUN_DIR DEST NAME | unpack DEST NAME RUN_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
