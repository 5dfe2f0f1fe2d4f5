"""The model registry (``models.json`` beside the bundled models, path ``search.REGISTRY_FILE``): what can be fetched, from where, with which SHA-256.

Also lists what is installed beside it, so ``calid models`` and the Slicer panel show one table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from calid.errors import ModelError
from calid.models import search
from calid.models.format import CONFIG_FILE, check_version, read_config
from calid.models.search import check_name, find_model, search_dirs

_ENTRY_TYPES = {
    "name": str, "version": str, "kind": str, "description": str, "url": (str, type(None)),
    "sha256": (str, type(None)), "size_bytes": (int, type(None)), "license": str, "bundled": bool, "card": str,
}



def validate_registry(data: Any) -> dict:
    """Structural check of models.json (the same rules as models.schema.json)."""
    if not isinstance(data, dict) or data.get("schema_version") != 1 or not isinstance(data.get("models"), list):
        raise ModelError("model registry must be an object with schema_version 1 and a 'models' list")
    names = set()
    for entry in data["models"]:
        where = f"model registry entry {entry.get('name', '?') if isinstance(entry, dict) else entry!r}"
        if not isinstance(entry, dict) or set(entry) != set(_ENTRY_TYPES):
            keys = sorted(entry) if isinstance(entry, dict) else entry
            raise ModelError(f"{where} must have exactly the keys {sorted(_ENTRY_TYPES)}, not {keys}")
        for key, kind in _ENTRY_TYPES.items():
            if not isinstance(entry[key], kind) or (kind is int and isinstance(entry[key], bool)):
                raise ModelError(f"{where}: {key} must be {kind}, not {entry[key]!r}")
        check_name(entry["name"])
        try:
            check_version(entry["version"])
        except ValueError as err:
            raise ModelError(f"{where}: {err}") from None
        if entry["sha256"] is not None and not is_sha256(entry["sha256"]):
            raise ModelError(f"{where}: sha256 must be 64 lowercase hex digits, not {entry['sha256']!r}")
        if not entry["bundled"] and (entry["url"] is None or entry["sha256"] is None):
            raise ModelError(f"{where}: a model that is not bundled needs both a url and a sha256")
        if entry["name"] in names:
            raise ModelError(f"{where} appears twice")
        names.add(entry["name"])
    return data


def is_sha256(text: str) -> bool:
    """True for 64 lowercase hex digits."""
    return len(text) == 64 and all(char in "0123456789abcdef" for char in text)


def load_registry(registry: dict | str | os.PathLike | None = None) -> dict:
    """The registry as a dict: given directly, read from a file, or the bundled models.json."""
    if isinstance(registry, dict):
        return validate_registry(registry)
    path = Path(registry) if registry is not None else search.REGISTRY_FILE
    if registry is None and not path.is_file():
        return {"schema_version": 1, "models": []}  # an engine copied without its bundled models
    try:
        return validate_registry(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read the model registry {path}: {err}") from err


def registry_entry(name: str, registry: dict | str | os.PathLike | None = None) -> dict:
    models = load_registry(registry)["models"]
    for entry in models:
        if entry["name"] == name:
            return entry
    known = ", ".join(entry["name"] for entry in models) or "none"
    raise ModelError(f"model {name!r} is not in the registry (known: {known}); import it with `calid models import PATH`")



def list_models(registry: dict | str | os.PathLike | None = None) -> list[dict]:
    """Registry entries plus any other installed model, each with whether and where it is installed."""
    rows = [{**entry, "in_registry": True, **_installation(entry["name"])} for entry in load_registry(registry)["models"]]
    listed = {row["name"] for row in rows}
    for folder in search_dirs():
        children = sorted(folder.iterdir()) if folder.is_dir() else []
        for child in children:
            if child.name in listed or child.name.startswith(".") or not (child / CONFIG_FILE).is_file():
                continue
            listed.add(child.name)
            rows.append({"name": child.name, "in_registry": False, **_installation(child.name)})
    return rows


def _installation(name: str) -> dict:
    try:
        path = find_model(name)
    except ModelError:
        return {"installed": False, "path": None, "installed_version": None}
    row = {"installed": True, "path": str(path), "installed_version": None}
    try:
        config = read_config(path)
        row.update(installed_version=config.version, installed_kind=config.kind)
    except ModelError as err:
        row["error"] = str(err)
    return row
