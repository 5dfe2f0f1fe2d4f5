"""Which model file a run actually used: its name, version and the SHA-256 of its weights.

The engine loads its networks with :func:`load_identified`, which records the identity
of each (:func:`identity_of` reads it back), so a report names the exact ``model.safetensors``
that ran, whichever folder it was found in. The hash is kept per file state (path,
modification time, size): loading a model again, e.g. for every volume of a cohort or
an evaluation, does not read its 10 MB again, while a replaced file is hashed anew.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path

from typing import TYPE_CHECKING

from calid.models.format import WEIGHTS_FILE, ModelConfig, load_model, read_config, sha256_of

if TYPE_CHECKING:
    import torch

#: (resolved path, mtime in ns, size in bytes) -> hex SHA-256.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()
#: loaded network -> its identity (weak: forgetting a network forgets its entry).
_LOADED: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def weights_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of ``path``, computed once per (path, mtime, size)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        cached = _DIGESTS.get(key)
    if cached is None:
        cached = sha256_of(path)
        with _LOCK:
            _DIGESTS[key] = cached
    return cached


def model_identity(directory: str | os.PathLike, config: ModelConfig | None = None) -> dict:
    """``{name, version, kind, sha256, path}`` of the model in ``directory`` (path: its weights file)."""
    directory = Path(directory)
    config = config or read_config(directory)
    weights = (directory / WEIGHTS_FILE).resolve()
    return {"name": config.name, "version": config.version, "kind": config.kind,
            "sha256": weights_sha256(weights), "path": str(weights)}


def load_identified(directory: str | os.PathLike, device: "str | torch.device" = "cpu") -> tuple["torch.nn.Module", ModelConfig]:
    """:func:`~calid.models.format.load_model`, remembering which file the network came from."""
    module, config = load_model(directory, device)
    _LOADED[module] = model_identity(directory, config)
    return module, config


def identity_of(module: object) -> dict | None:
    """The identity recorded when ``module`` was loaded from a model folder; None for a network built in memory."""
    try:
        identity = _LOADED.get(module)
    except TypeError:  # not weak-referenceable: never loaded by load_model
        return None
    return dict(identity) if identity is not None else None
