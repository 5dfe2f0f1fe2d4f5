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
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from calid.errors import ModelError, OutputError

if TYPE_CHECKING:
    import torch

    from calid.progress import Progress, ProgressMode

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "MODEL_CARD.md"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)

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
        _move_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _move_into_place(staging: Path, target: Path) -> None:
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


# --- where models live: bundled, user cache, registry, fetch and import -------------------

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"
REGISTRY_FILE = BUNDLED_DIR / "models.json"
_ENTRY_TYPES = {
    "name": str, "version": str, "kind": str, "description": str, "url": (str, type(None)),
    "sha256": (str, type(None)), "size_bytes": (int, type(None)), "license": str, "bundled": bool, "card": str,
}


def user_cache_dir() -> Path:
    """Per-user model cache: $XDG_CACHE_HOME/calid/models, else ~/.cache/calid/models."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "calid" / "models"


def search_dirs() -> list[Path]:
    """Folders holding model directories, in the order :func:`find_model` tries them."""
    dirs = [Path(os.environ["CALID_MODEL_DIR"])] if os.environ.get("CALID_MODEL_DIR") else []
    return [*dirs, BUNDLED_DIR, user_cache_dir()]


def _check_name(name: str) -> str:
    if not name or name != Path(name).name or name.startswith("."):
        raise ModelError(f"model name must be a plain name such as 'calid-vae', not {name!r}")
    return name


def find_model(name: str) -> Path:
    """The first directory named ``name`` holding a config.json, along :func:`search_dirs`."""
    _check_name(name)
    looked = [folder / name for folder in search_dirs()]
    for candidate in looked:
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise ModelError(
        f"model {name!r} is not installed (looked in {', '.join(map(str, looked))}); "
        f"get it with `calid models fetch {name}`, or offline with `calid models import PATH`"
    )


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
        _check_name(entry["name"])
        if entry["sha256"] is not None and not _is_sha256(entry["sha256"]):
            raise ModelError(f"{where}: sha256 must be 64 lowercase hex digits, not {entry['sha256']!r}")
        if not entry["bundled"] and (entry["url"] is None or entry["sha256"] is None):
            raise ModelError(f"{where}: a model that is not bundled needs both a url and a sha256")
        if entry["name"] in names:
            raise ModelError(f"{where} appears twice")
        names.add(entry["name"])
    return data


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(char in "0123456789abcdef" for char in text)


def load_registry(registry: dict | str | os.PathLike | None = None) -> dict:
    """The registry as a dict: given directly, read from a file, or the bundled models.json."""
    if isinstance(registry, dict):
        return validate_registry(registry)
    path = Path(registry) if registry is not None else REGISTRY_FILE
    if registry is None and not path.is_file():
        return {"schema_version": 1, "models": []}  # a pip wheel ships without Resources/
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


def fetch_model(
    name: str,
    registry: dict | str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    progress: "Progress | ProgressMode | None" = None,
) -> Path:
    """Download a registry model, check its SHA-256, unpack it into the cache; the only network access."""
    entry = registry_entry(_check_name(name), registry)
    if entry["url"] is None:
        raise ModelError(
            f"model {name!r} is bundled with CaLID Slicer and has no download; "
            f"if {BUNDLED_DIR / name} is missing, reinstall the extension"
        )
    cache_dir = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.download.", dir=cache_dir))
    try:
        archive = work / "archive"
        digest = _download(entry["url"], archive, entry["size_bytes"], progress, label=f"download {name}")
        if digest != entry["sha256"]:
            raise ModelError(
                f"download of {name!r} from {entry['url']} has SHA-256 {digest}, expected {entry['sha256']}: "
                "the file is corrupt or was changed, so nothing was installed"
            )
        _safe_unpack(archive, work / "unpacked")
        return _install(_model_root(work / "unpacked"), cache_dir, expect=(entry["name"], entry["version"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(url: str, target: Path, size: int | None, progress: "Progress | ProgressMode | None", label: str) -> str:
    """Stream ``url`` into ``target``; return its SHA-256 (hashed on the way, not re-read)."""
    import urllib.error
    import urllib.request

    from calid.progress import as_progress

    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = size or int(response.headers.get("Content-Length") or 0)
            with as_progress(progress).stage(label, total=(total >> 20) + 1) as stage:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    stage.advance()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ModelError(
            f"cannot download {url}: {err}; check the network, or download the file elsewhere "
            "and install it with `calid models import PATH --sha256 HASH`"
        ) from err
    return digest.hexdigest()


def import_model(
    archive_or_dir: str | os.PathLike,
    sha256: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    registry: dict | str | os.PathLike | None = None,
) -> Path:
    """Install a model from a local directory or .zip/.tar.gz (offline sites); returns its cache path.

    ``sha256`` checks the archive file, or for a directory its model.safetensors. Without it,
    an archive of a registry model (same name and version) must match the registry's hash.
    """
    source = Path(archive_or_dir)
    if not source.exists():
        raise ModelError(f"{source} does not exist; give a model directory or a .zip/.tar.gz of one")
    if sha256 is not None and not _is_sha256(sha256.lower()):
        raise ModelError(f"sha256 must be 64 hex digits, not {sha256!r}")
    expected = sha256.lower() if sha256 else None
    cache_dir = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        root = _model_root(source)
        _check_digest(root / WEIGHTS_FILE, expected)
        return _install(root, cache_dir)
    digest = _check_digest(source, expected)
    work = Path(tempfile.mkdtemp(prefix=f".{source.name}.import.", dir=cache_dir))
    try:
        _safe_unpack(source, work)
        root = _model_root(work)
        if expected is None:
            _check_against_registry(read_config(root), digest, registry)
        return _install(root, cache_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_digest(path: Path, expected: str | None) -> str:
    if not path.is_file():
        raise ModelError(f"{path} not found: a model directory must hold {', '.join(MODEL_FILES)}")
    digest = sha256_of(path)
    if expected is not None and digest != expected:
        raise ModelError(f"{path} has SHA-256 {digest}, expected {expected}: the file is corrupt or a different one")
    return digest


def _check_against_registry(config: ModelConfig, digest: str, registry: dict | str | os.PathLike | None) -> None:
    """A hand-downloaded copy of a registry model is checked like a fetched one."""
    for entry in load_registry(registry)["models"]:
        same = (entry["name"], entry["version"]) == (config.name, config.version)
        if same and not entry["bundled"] and entry["sha256"] != digest:
            raise ModelError(
                f"this archive claims to be {config.name} {config.version} but its SHA-256 {digest} is not "
                f"the registry's {entry['sha256']}; download it again (or pass --sha256 for your own build)"
            )


def _safe_unpack(archive: Path, destination: Path) -> None:
    """Extract a .zip or .tar(.gz), refusing absolute paths, '..', links and devices."""
    import stat
    import tarfile
    import zipfile

    destination.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                _check_member(info.filename, archive, stat.S_ISLNK(info.external_attr >> 16))
            bundle.extractall(destination)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            members = bundle.getmembers()
            for member in members:
                _check_member(member.name, archive, not (member.isfile() or member.isdir()))
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            bundle.extractall(destination, members=members, **extra)
    else:
        raise ModelError(f"{archive} must be a .zip or .tar.gz of a model directory")


def _check_member(name: str, archive: Path, is_special: bool) -> None:
    from pathlib import PurePosixPath

    parts = PurePosixPath(name.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or name[1:2] == ":" or is_special:
        raise ModelError(f"{archive} contains the unsafe member {name!r} (absolute, '..' or a link); refusing to unpack it")


def _model_root(folder: Path) -> Path:
    """The model directory inside an unpacked archive: the folder itself or its one subfolder."""
    if (folder / CONFIG_FILE).is_file():
        return folder
    children = [child for child in folder.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / CONFIG_FILE).is_file():
        return children[0]
    raise ModelError(f"no {CONFIG_FILE} in {folder} or its single subfolder: this is not a model directory")


def _install(source: Path, cache_dir: Path, expect: tuple[str, str] | None = None) -> Path:
    """Copy the three model files into ``cache_dir/<name>`` at once, replacing an older copy."""
    missing = [name for name in MODEL_FILES if not (source / name).is_file()]
    if missing:
        raise ModelError(f"{source} lacks {', '.join(missing)}: a model directory must hold {', '.join(MODEL_FILES)}")
    config = read_config(source)
    _check_name(config.name)
    if expect is not None and (config.name, config.version) != expect:
        raise ModelError(f"the archive holds {config.name} {config.version}, not {expect[0]} {expect[1]}")
    staging = Path(tempfile.mkdtemp(prefix=f".{config.name}.", dir=cache_dir))
    try:
        for name in MODEL_FILES:
            shutil.copyfile(source / name, staging / name)
        target = cache_dir / config.name
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


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
