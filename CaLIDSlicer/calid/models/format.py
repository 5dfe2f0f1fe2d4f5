"""Model files: safetensors weights + JSON config + Markdown model card, never pickle.

A model is a directory holding ``config.json`` (how to rebuild the network),
``model.safetensors`` (the tensors, loaded without executing any code) and
``MODEL_CARD.md`` (what it was trained on, under which terms, how well it does).
The network class is found through a registry of named constructors, so a file
can only ever build code that ships with calid.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from calid.errors import ModelError, OutputError

if TYPE_CHECKING:
    import torch


CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "MODEL_CARD.md"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)

#: A model's version: semantic MAJOR.MINOR.PATCH without leading zeros (the same rule as models.schema.json).
SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


def check_version(version: Any) -> str:
    """``version`` if it is semantic "MAJOR.MINOR.PATCH" (e.g. "2.0.0"); ValueError naming the rule otherwise."""
    if not isinstance(version, str) or SEMVER.fullmatch(version) is None:
        raise ValueError(f"version must be semantic MAJOR.MINOR.PATCH (e.g. \"2.0.0\"), not {version!r}; "
                         f"a model written by an older calid can be re-stamped with calid.models.versioning.set_version")
    return version


#: architecture name -> constructor (class or function) returning an ``nn.Module``.
ARCHITECTURES: dict[str, Callable[..., "torch.nn.Module"]] = {}

#: architecture name -> module whose import registers it (imported on first use only).
ARCHITECTURE_MODULES: dict[str, str] = {
    "calid-vae": "calid.models.vae",
    "calid-denoiser": "calid.models.denoiser",
    "calid-denoiser-2dt": "calid.models.temporal",
    "calid-segmenter": "calid.models.segmenter",
    "calid-motion": "calid.models.motion",
}


def register_architecture(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make a constructor buildable from a config's ``architecture`` name."""

    def register(constructor: Callable[..., Any]) -> Callable[..., Any]:
        existing = ARCHITECTURES.get(name)
        if existing is not None and existing is not constructor:
            raise ValueError(f"architecture {name!r} is already registered to {existing!r}")
        ARCHITECTURES[name] = constructor
        return constructor

    return register


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network before its weights are loaded."""

    name: str
    version: str
    kind: str
    architecture: str
    kwargs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("name", "version", "kind", "architecture"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ModelConfig.{key} must be a non-empty string, not {value!r}")
        check_version(self.version)
        for key in ("kwargs", "extra"):
            if not isinstance(getattr(self, key), dict):
                raise ValueError(f"ModelConfig.{key} must be a dict, not {type(getattr(self, key)).__name__}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> "ModelConfig":
        if not isinstance(data, dict):
            raise ValueError(f"config must be a JSON object, not {type(data).__name__}")
        required = ("name", "version", "kind", "architecture")
        missing = [key for key in required if key not in data]
        if missing:
            raise ValueError(f"config lacks {', '.join(missing)}")
        unknown = sorted(set(data) - {*required, "kwargs", "extra"})
        if unknown:
            raise ValueError(f"config has unknown keys {', '.join(unknown)}")
        return cls(**{"kwargs": {}, "extra": {}, **data})


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks so large weights do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(
    module: "torch.nn.Module",
    config: ModelConfig,
    directory: str | os.PathLike,
    card: str,
    *,
    overwrite: bool = False,
) -> Path:
    """Write config, weights and card into ``directory`` all at once (temp dir + rename).

    Readers never see a half-written model: the files appear together or not at all.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if not card.strip():
        raise ValueError("card must describe the model (architecture, data, metrics), not be empty")
    if directory.exists() and not overwrite:
        raise OutputError(f"{directory} already exists; pass overwrite=True to replace it")
    # clone: tied/shared tensors would otherwise make safetensors refuse to save
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in module.state_dict().items()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"name": config.name, "version": config.version})
        (staging / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
        (staging / CARD_FILE).write_text(card if card.endswith("\n") else card + "\n", encoding="utf-8")
        move_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, replacing an existing ``target`` only after success."""
    if not target.exists():
        os.replace(staging, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, retired / target.name)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(retired / target.name, target)
        raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)


def read_config(directory: str | os.PathLike) -> ModelConfig:
    """The model's config, with a message that says which file is wrong and why."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{path} not found: a model directory must hold {', '.join(MODEL_FILES)}")
    try:
        return ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise ModelError(f"{path} is not a valid model config: {err}") from err


def build_architecture(config: ModelConfig) -> "torch.nn.Module":
    """Construct the (untrained) network a config names, importing its module lazily."""
    if config.architecture not in ARCHITECTURES and config.architecture in ARCHITECTURE_MODULES:
        importlib.import_module(ARCHITECTURE_MODULES[config.architecture])
    constructor = ARCHITECTURES.get(config.architecture)
    if constructor is None:
        known = sorted({*ARCHITECTURES, *ARCHITECTURE_MODULES})
        raise ModelError(
            f"unknown architecture {config.architecture!r} in model {config.name!r}; "
            f"must be one of {', '.join(known)} (is your calid older than the model?)"
        )
    try:
        return constructor(**config.kwargs)
    except TypeError as err:
        raise ModelError(f"cannot build {config.architecture!r} with kwargs {config.kwargs}: {err}") from err


def load_model(directory: str | os.PathLike, device: "str | torch.device" = "cpu") -> tuple["torch.nn.Module", ModelConfig]:
    """Rebuild the network from its config and load its weights strictly, in eval mode."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    directory = Path(directory)
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights} not found: the model directory is incomplete; fetch or import it again")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ModelError(f"{weights} is not a readable safetensors file: {err}") from err
    stored = (metadata.get("name"), metadata.get("version"))
    if stored != (config.name, config.version):
        raise ModelError(
            f"{weights} holds weights of {stored[0]!r} version {stored[1]!r}, "
            f"but config.json says {config.name!r} version {config.version!r}: the files do not belong together"
        )
    module = build_architecture(config)
    _check_keys(module, state, weights)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelError(f"{weights} does not fit architecture {config.architecture!r}: {err}") from err
    return module.to(device).eval(), config


def _check_keys(module: "torch.nn.Module", state: dict, weights: Path) -> None:
    """Name the tensors that are missing or unexpected, before torch's longer message."""
    expected = set(module.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected tensors: {', '.join(unexpected)}")
        raise ModelError(f"{weights} does not match its architecture ({'; '.join(parts)})")
