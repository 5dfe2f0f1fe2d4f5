"""Re-stamp a model directory with a new version: config.json and the weights' metadata, tensors untouched.

A model's version lives in two places that :func:`calid.models.format.load_model` requires to agree
(config.json and the ``version`` in model.safetensors' metadata). Changing it rewrites the weights
file's header, so its SHA-256 changes while every tensor stays bit-identical; :func:`set_version`
checks the latter by reading the new file back before it replaces the old one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from calid.errors import ModelError
from calid.models.format import CONFIG_FILE, WEIGHTS_FILE, ModelConfig, check_version, sha256_of


def _tensor_bytes(path: Path) -> tuple[dict, dict[str, tuple[str, tuple[int, ...], bytes]]]:
    """(metadata, name -> (dtype, shape, raw bytes)) of a safetensors file."""
    import torch
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        for key in handle.keys():
            tensor = handle.get_tensor(key).contiguous()
            raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
            tensors[key] = (str(tensor.dtype), tuple(tensor.shape), raw)
    return metadata, tensors


def restamped_config(directory: Path, version: str) -> ModelConfig:
    """The model's config with ``version`` (read even when its old version breaks today's rule)."""
    path = directory / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelConfig.from_dict({**data, "version": version} if isinstance(data, dict) else data)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise ModelError(f"{path} is not a valid model config: {err}") from err


def set_version(directory: str | os.PathLike, version: str) -> str:
    """Give the model in ``directory`` the semantic ``version``; returns the new SHA-256 of its weights.

    The registry entry (models.json), the model card and any other pin of the old SHA-256 are
    updated by hand.
    """
    from safetensors.torch import load_file, save_file

    directory = Path(directory)
    check_version(version)
    config = restamped_config(directory, version)
    weights = directory / WEIGHTS_FILE
    metadata, before = _tensor_bytes(weights)
    fd, staged_name = tempfile.mkstemp(prefix=".weights.", suffix=".safetensors", dir=directory)
    os.close(fd)
    staged = Path(staged_name)
    try:
        save_file(load_file(str(weights)), str(staged), metadata={**metadata, "version": version})
        new_metadata, after = _tensor_bytes(staged)
        if after != before or new_metadata != {**metadata, "version": version}:
            raise ModelError(f"re-writing {weights} changed its tensors or metadata; nothing was replaced")
        os.replace(staged, weights)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    (directory / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
    return sha256_of(weights)
