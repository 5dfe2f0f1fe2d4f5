"""Start a new network from a trained one whose layers may be narrower (e.g. more latent channels).

A tensor of the same name and shape is copied. A tensor that grew (same number of dimensions,
no dimension smaller) gets the trained values in its leading block; its new *input* columns
(dimension 1 of a weight) are zeroed and its new outputs keep their fresh initialisation, so
every output the trained network had is computed exactly as before and the new channels start
as extra capacity the optimiser can use (their gradients are not zero: the new outputs feed
new input columns, which receive gradient from them).
"""

from __future__ import annotations

from pathlib import Path

import torch


def trained_tensors(source: Path) -> dict[str, torch.Tensor]:
    """The network tensors of a model folder (model.safetensors) or a run folder (checkpoint.safetensors)."""
    from safetensors.torch import load_file

    file = source / "model.safetensors" if (source / "model.safetensors").is_file() else source / "checkpoint.safetensors"
    if not file.is_file():
        raise FileNotFoundError(f"{source} holds neither model.safetensors nor checkpoint.safetensors; "
                                "point --init at a model folder or a training run folder")
    return {k.removeprefix("model."): v for k, v in load_file(str(file)).items() if not k.startswith("optim.")}


def grow_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, int]:
    """Copy ``tensors`` into ``model`` (same name; same or larger shape): counts of tensors copied and grown."""
    own = model.state_dict()
    counts = {"copied": 0, "grown": 0}
    for name, trained in tensors.items():
        target = own.get(name)
        if target is None or target.ndim != trained.ndim:
            continue
        if target.shape == trained.shape:
            own[name] = trained.to(target.dtype)
            counts["copied"] += 1
        elif all(new >= old for new, old in zip(target.shape, trained.shape)):
            grown = target.clone()
            if grown.ndim >= 2 and grown.shape[1] > trained.shape[1]:
                grown[:, trained.shape[1]:] = 0  # new inputs must not change the trained outputs
            grown[tuple(slice(0, size) for size in trained.shape)] = trained.to(grown.dtype)
            own[name] = grown
            counts["grown"] += 1
    model.load_state_dict(own)
    return counts
