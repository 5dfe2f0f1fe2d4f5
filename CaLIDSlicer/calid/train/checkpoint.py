"""Resumable training state in safetensors + JSON (never pickle).

Model and optimizer tensors are flattened into one safetensors file under
``model.`` / ``optim.<param>.<name>`` keys; everything that is not a tensor (step,
optimizer hyper-parameters, RNG seed) goes into a JSON file written after it, so a
checkpoint is only considered complete once its JSON exists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

WEIGHTS = "checkpoint.safetensors"
STATE = "checkpoint.json"


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for param_id, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{param_id}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    for param_id, entries in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    """Write weights then JSON, each via a temp file and atomic rename."""
    from safetensors.torch import save_file

    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = _flatten_optimizer(optimizer)
    tensors.update(optim_tensors)
    save_file(tensors, str(run_dir / (WEIGHTS + ".tmp")))
    os.replace(run_dir / (WEIGHTS + ".tmp"), run_dir / WEIGHTS)
    (run_dir / (STATE + ".tmp")).write_text(json.dumps({**info, "optimizer": optim_meta}, indent=1))
    os.replace(run_dir / (STATE + ".tmp"), run_dir / STATE)


def load_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any] | None:
    """Restore model (and optimizer) in place; the saved info dict, or None without a checkpoint."""
    from safetensors.torch import load_file

    if not (run_dir / STATE).is_file() or not (run_dir / WEIGHTS).is_file():
        return None
    info = json.loads((run_dir / STATE).read_text())
    tensors = load_file(str(run_dir / WEIGHTS))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, info.pop("optimizer")))
    else:
        info.pop("optimizer", None)
    return info
