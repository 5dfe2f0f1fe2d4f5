"""Installing models into the user cache: download from the registry (``fetch``) or copy a local file (``import``).

The only network access calid ever makes is :func:`fetch_model`, on request; every file is
checked against a SHA-256 and unpacked with no absolute paths, '..' or links before it is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from calid.errors import ModelError
from calid.models.format import CONFIG_FILE, MODEL_FILES, WEIGHTS_FILE, ModelConfig, move_into_place, read_config, sha256_of
from calid.models.registry import is_sha256, load_registry, registry_entry
from calid.models.search import BUNDLED_DIR, check_name, user_cache_dir

if TYPE_CHECKING:
    from calid.progress import Progress, ProgressMode


def fetch_model(
    name: str,
    registry: dict | str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    progress: "Progress | ProgressMode | None" = None,
) -> Path:
    """Download a registry model, check its SHA-256, unpack it into the cache; the only network access."""
    entry = registry_entry(check_name(name), registry)
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
    if sha256 is not None and not is_sha256(sha256.lower()):
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
    check_name(config.name)
    if expect is not None and (config.name, config.version) != expect:
        raise ModelError(f"the archive holds {config.name} {config.version}, not {expect[0]} {expect[1]}")
    staging = Path(tempfile.mkdtemp(prefix=f".{config.name}.", dir=cache_dir))
    try:
        for name in MODEL_FILES:
            shutil.copyfile(source / name, staging / name)
        target = cache_dir / config.name
        move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
