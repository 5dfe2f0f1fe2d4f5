"""Where models are found: ``$CALID_MODEL_DIR``, then the models bundled with the extension, then the user cache.

The bundled models are ``CaLIDSlicer/Resources/Models`` in a clone or the Slicer extension,
and ``calid/models/bundled`` in an installed wheel (setup.py copies them in at build time).

The first folder holding ``<name>/config.json`` wins, so a site can override a bundled
model without touching the extension (``calid models`` shows which copy runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from calid.errors import ModelError
from calid.models.format import CONFIG_FILE

#: The bundled models of a clone, an editable install or the Slicer extension.
SOURCE_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Models"
#: The same files inside an installed wheel (setup.py's PACKAGED).
PACKAGED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_DIR = PACKAGED_DIR if (PACKAGED_DIR / "models.json").is_file() else SOURCE_DIR
#: The model registry (read and checked by :mod:`calid.models.registry`; here only for a missing model's remedy).
REGISTRY_FILE = BUNDLED_DIR / "models.json"


def user_cache_dir() -> Path:
    """Per-user model cache: $XDG_CACHE_HOME/calid/models, else ~/.cache/calid/models."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "calid" / "models"


def search_dirs() -> list[Path]:
    """Folders holding model directories, in the order :func:`find_model` tries them."""
    dirs = [Path(os.environ["CALID_MODEL_DIR"])] if os.environ.get("CALID_MODEL_DIR") else []
    return [*dirs, BUNDLED_DIR, user_cache_dir()]



def check_name(name: str) -> str:
    """``name`` itself when it is a plain folder name (no path, no leading dot); else a ModelError."""
    if not name or name != Path(name).name or name.startswith("."):
        raise ModelError(f"model name must be a plain name such as 'calid-vae', not {name!r}")
    return name


def find_model(name: str) -> Path:
    """The first directory named ``name`` holding a config.json, along :func:`search_dirs`."""
    check_name(name)
    looked = [folder / name for folder in search_dirs()]
    for candidate in looked:
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise ModelError(f"model {name!r} is not installed (looked in {', '.join(map(str, looked))}); {how_to_get(name)}")


def how_to_get(name: str) -> str:
    """The remedy for a missing model: `calid models fetch` only where the registry can download it.

    Reads the registry's entries plainly (the registry module imports this one, so it cannot be used
    here); an unreadable registry gives the remedy for a name it does not list.
    """
    try:
        models = json.loads(REGISTRY_FILE.read_text(encoding="utf-8")).get("models", [])
        entry = next((row for row in models if isinstance(row, dict) and row.get("name") == name), None)
    except (OSError, ValueError, AttributeError):
        entry = None
    if entry is not None and entry.get("url"):
        return f"get it with `calid models fetch {name}`, or offline with `calid models import PATH`"
    if entry is not None:
        return "it is bundled with CaLID Slicer: reinstall calid, or install a copy with `calid models import PATH`"
    return "`calid models list` shows the models calid knows; install a model folder or archive with `calid models import PATH`"
