"""The panel's model section: which models the engine finds, and installing one copied by hand.

Offline sites get model archives on a USB stick or a share; the panel installs them with
``calid models import`` in a child process, like every other engine call, so Slicer's own
Python never loads model code. The engine checks the SHA-256 (the one typed in, or the
registry's) before anything is installed, and a failed import leaves the cache as it was.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from calid.errors import CalidError

from .process import EngineProcess

#: Seconds a listing or an import may take before the panel gives up (copies are local).
ENGINE_CALL_TIMEOUT_S = 120

#: What the panel's file dialog offers: the archives `calid models import` reads, or a model folder's config.json.
IMPORT_FILE_FILTER = "CaLID model (*.zip *.tar.gz *.tgz config.json)"

#: Roles of the models the panel's features need, by registry kind.
FEATURE_OF_KIND = {"vae": "CaLID (autoencoder)", "denoiser": "CaLID 3D", "denoiser-2dt": "CaLID 2D+T",
                   "segmenter": "segmentation"}


class ModelCallFailed(CalidError):
    """Listing or importing models failed; the message is the engine's own."""


@dataclass(frozen=True)
class ModelRow:
    """One model as the panel lists it."""

    name: str
    kind: str
    version: str | None  # installed version, None when not installed
    where: str  # "bundled", "user cache", "$CALID_MODEL_DIR", a folder, or "not installed"
    error: str = ""  # the engine found the folder but cannot read the model in it

    @property
    def installed(self) -> bool:
        return self.version is not None and not self.error

    def text(self) -> str:
        feature = FEATURE_OF_KIND.get(self.kind, self.kind)
        if self.error:
            return f"{self.name} ({feature}): unusable copy in {self.where}: {self.error}"
        if not self.installed:
            return f"{self.name} ({feature}): not installed"
        return f"{self.name} {self.version} ({feature}): {self.where}"


def _where(path: str | None, bundled_dir: Path, cache_dir: Path, env_dir: str | None) -> str:
    if path is None:
        return "not installed"
    folder = Path(path).parent
    if env_dir and folder == Path(env_dir):
        return "$CALID_MODEL_DIR"
    if folder == bundled_dir:
        return "bundled"
    if folder == cache_dir:
        return "user cache"
    return str(folder)


def rows_from_listing(listing: list[dict], *, bundled_dir: Path, cache_dir: Path,
                      env_dir: str | None = None) -> list[ModelRow]:
    """``calid models list --json`` rows as the panel shows them."""
    rows = []
    for entry in listing:
        path = entry.get("path") if entry.get("installed") else None
        kind = entry.get("installed_kind") or entry.get("kind") or "?"
        version = entry.get("installed_version") if path else None
        rows.append(ModelRow(entry["name"], kind, version, _where(path, bundled_dir, cache_dir, env_dir),
                             entry.get("error", "") if path else ""))
    return rows


def _engine_call(arguments: list[str], python: str | None, what: str) -> str:
    """Run ``calid ARGS`` to the end; its stdout, or ModelCallFailed with the engine's error."""
    process = EngineProcess(arguments, device="cpu", python=python)
    process.start()
    try:
        code = process.wait(timeout=ENGINE_CALL_TIMEOUT_S)
    except TimeoutError:
        process.cancel()
        raise ModelCallFailed(f"{what} took longer than {ENGINE_CALL_TIMEOUT_S} s and was stopped") from None
    if code != 0:
        raise ModelCallFailed(f"{what} failed: {process.error_text()}")
    return "\n".join(process.messages)


def list_installed(python: str | None = None) -> list[ModelRow]:
    """Every registry model and every other installed one, with where the engine finds it."""
    from calid.models.search import BUNDLED_DIR, user_cache_dir

    output = _engine_call(["models", "list", "--json"], python, "listing the models")
    try:
        listing = json.loads(output)
    except ValueError as err:
        raise ModelCallFailed(f"the engine's model list is not JSON ({err}): {output[:200]!r}") from err
    return rows_from_listing(listing, bundled_dir=BUNDLED_DIR, cache_dir=user_cache_dir(),
                             env_dir=os.environ.get("CALID_MODEL_DIR"))


def import_path(chosen: str | Path) -> Path:
    """A chosen ``config.json`` stands for its model folder; an archive or folder is taken as it is."""
    path = Path(chosen)
    return path.parent if path.name == "config.json" else path


def import_model_file(chosen: str | Path, sha256: str = "", python: str | None = None) -> str:
    """Install a model archive (or folder) copied by hand into the user cache; the engine's confirmation line.

    ``sha256`` is the archive's (or, for a folder, its model.safetensors') checksum as published
    with the model; left empty, an archive of a registry model is checked against the registry.
    """
    path = import_path(chosen)
    if not path.exists():
        raise ModelCallFailed(f"{path} does not exist; choose the model archive (.zip/.tar.gz) or its config.json")
    arguments = ["models", "import", str(path)]
    digest = sha256.strip().lower()
    if digest:
        arguments += ["--sha256", digest]
    output = _engine_call(arguments, python, f"importing {path.name}")
    confirmation = output.strip().splitlines()[-1] if output.strip() else f"installed {path.name}"
    unchecked = "" if digest else " (no SHA-256 given: only a registry model's archive was checked against the registry)"
    return confirmation + unchecked + shadowing_note(confirmation)


_INSTALLED = re.compile(r"^installed (?P<name>\S+) \S+ \(\S+\) in (?P<path>.+)$")


def shadowing_note(confirmation: str) -> str:
    """A warning when the engine will keep using another copy of the model it just installed.

    The engine looks in $CALID_MODEL_DIR and the bundle before the user cache, so a newer copy of
    a bundled model imported by hand is not the one a run uses; the user must be told.
    """
    from calid.errors import ModelError
    from calid.models.search import find_model

    match = _INSTALLED.match(confirmation)
    if match is None:
        return ""
    try:
        used = find_model(match["name"])
    except ModelError:
        return ""
    if used.resolve() == Path(match["path"]).resolve():
        return ""
    return (f". Note: runs still use the copy in {used.parent} (looked in before the user cache); "
            f"remove it or point $CALID_MODEL_DIR at {Path(match['path']).parent} to use the imported one")
