"""Model files: safetensors round trip, strict loading, registry, fetch/import with SHA-256, CLI."""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from calid.models import fetch, search
from calid.models import format as model_format
from calid.models import registry as model_registry
from calid.cli import main
from calid.errors import ModelError, OutputError
from calid.models.format import ModelConfig, register_architecture

MODELS_DIR = Path(model_format.__file__).resolve().parents[2] / "Resources" / "Models"


@register_architecture("test-tiny-mlp")
def tiny_mlp(width: int = 5, norm: bool = False) -> torch.nn.Module:
    layers = [torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)]
    return torch.nn.Sequential(*layers, *([torch.nn.BatchNorm1d(2)] if norm else []))


def tiny_config(**kwargs) -> ModelConfig:
    return ModelConfig("tiny", "1.0.0", "test", "test-tiny-mlp", kwargs or {"width": 5}, {"scale": 0.18})


@pytest.fixture
def saved(tmp_path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    module = tiny_mlp(width=5)
    return module, model_format.save_model(module, tiny_config(), tmp_path / "tiny", "# Tiny\nA test model.")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No CALID_MODEL_DIR, and a user cache inside tmp_path."""
    monkeypatch.delenv("CALID_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "calid" / "models"


def registry_for(archive: Path, sha256: str, name: str = "tiny", version: str = "1.0.0") -> dict:
    entry = {
        "name": name, "version": version, "kind": "test", "description": "tiny test model",
        "url": archive.as_uri(), "sha256": sha256, "size_bytes": archive.stat().st_size,
        "license": "CC0-1.0", "bundled": False, "card": "MODEL_CARD.md",
    }
    return {"schema_version": 1, "models": [entry]}


def zip_dir(model_dir: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in model_dir.iterdir():
            bundle.write(file, f"{model_dir.name}/{file.name}")
    return archive


def test_round_trip_gives_identical_outputs(saved):
    module, directory = saved
    loaded, config = model_format.load_model(directory)
    assert config == tiny_config()
    assert config.extra == {"scale": 0.18}
    x = torch.randn(4, 3)
    assert torch.equal(module(x), loaded(x))
    assert not loaded.training
    assert sorted(p.name for p in directory.iterdir()) == sorted(model_format.MODEL_FILES)


def test_weights_are_safetensors_not_pickle(saved):
    _, directory = saved
    raw = (directory / model_format.WEIGHTS_FILE).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"] == {"name": "tiny", "version": "1.0.0"}
    assert not raw.startswith(b"PK") and raw[:2] != b"\x80\x02"  # neither torch zip nor pickle
    for module in (model_format, search, model_registry, fetch):
        source = Path(module.__file__).read_text()
        assert not re.search(r"torch\.load\b|import pickle|\bpickle\.\w|weights_only", source), module.__name__


def test_strict_loading_names_missing_and_unexpected(saved, tmp_path):
    _, directory = saved
    (directory / model_format.CONFIG_FILE).write_text(tiny_config(width=5, norm=True).to_json())
    with pytest.raises(ModelError, match=r"missing tensors: 3\.bias, 3\.num_batches_tracked"):
        model_format.load_model(directory)
    bigger = model_format.save_model(tiny_mlp(width=5, norm=True), tiny_config(width=5, norm=True), tmp_path / "big", "card")
    (bigger / model_format.CONFIG_FILE).write_text(tiny_config().to_json())
    with pytest.raises(ModelError, match=r"unexpected tensors: 3\.bias"):
        model_format.load_model(bigger)


def test_shape_mismatch_and_bad_files_are_model_errors(saved):
    _, directory = saved
    (directory / model_format.CONFIG_FILE).write_text(tiny_config(width=7).to_json())
    with pytest.raises(ModelError, match="does not fit"):
        model_format.load_model(directory)
    (directory / model_format.CONFIG_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not a valid model config"):
        model_format.load_model(directory)
    unknown = ModelConfig("tiny", "1.0.0", "test", "no-such-architecture")
    (directory / model_format.CONFIG_FILE).write_text(unknown.to_json())
    with pytest.raises(ModelError, match="unknown architecture 'no-such-architecture'.*calid-vae"):
        model_format.load_model(directory)
    (directory / model_format.WEIGHTS_FILE).unlink()
    with pytest.raises(ModelError, match="model.safetensors not found"):
        model_format.load_model(directory)


def test_weights_of_another_model_are_refused(saved):
    _, directory = saved
    (directory / model_format.CONFIG_FILE).write_text(ModelConfig("tiny", "2.0.0", "test", "test-tiny-mlp", {"width": 5}).to_json())
    with pytest.raises(ModelError, match="do not belong together"):
        model_format.load_model(directory)


def test_save_refuses_to_overwrite_unless_asked(saved):
    module, directory = saved
    with pytest.raises(OutputError, match="overwrite=True"):
        model_format.save_model(module, tiny_config(), directory, "card")
    torch.nn.init.zeros_(module[0].weight)
    model_format.save_model(module, tiny_config(), directory, "card v2", overwrite=True)
    loaded, _ = model_format.load_model(directory)
    assert torch.count_nonzero(loaded[0].weight) == 0
    assert (directory / model_format.CARD_FILE).read_text() == "card v2\n"
    assert [p.name for p in directory.parent.iterdir()] == ["tiny"]  # no staging left behind


def test_config_and_registration_checks():
    with pytest.raises(ValueError, match="version must be a non-empty string"):
        ModelConfig("x", "", "vae", "calid-vae")
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("test-tiny-mlp")(lambda: None)


def test_fetch_with_correct_hash_installs(saved, tmp_path, clean_env):
    module, directory = saved
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(directory, arcname="tiny")
    registry = registry_for(archive, model_format.sha256_of(archive))
    installed = fetch.fetch_model("tiny", registry=registry)
    assert installed == clean_env / "tiny"
    assert search.find_model("tiny") == installed
    loaded, _ = model_format.load_model(installed)
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), module(x))
    assert [p.name for p in clean_env.iterdir()] == ["tiny"]


def test_fetch_with_wrong_hash_raises_and_leaves_nothing(saved, tmp_path):
    _, directory = saved
    archive = zip_dir(directory, tmp_path / "tiny.zip")
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="SHA-256 .* expected 0{64}"):
        fetch.fetch_model("tiny", registry=registry_for(archive, "0" * 64), cache_dir=cache)
    assert list(cache.iterdir()) == []
    with pytest.raises(ModelError, match="not in the registry"):
        fetch.fetch_model("other", registry=registry_for(archive, "0" * 64), cache_dir=cache)


def test_import_directory_and_zip(saved, tmp_path):
    _, directory = saved
    cache = tmp_path / "cache"
    assert fetch.import_model(directory, cache_dir=cache) == cache / "tiny"
    good = model_format.sha256_of(directory / model_format.WEIGHTS_FILE)
    with pytest.raises(ModelError, match="expected f{64}"):
        fetch.import_model(directory, sha256="f" * 64, cache_dir=cache)
    archive = zip_dir(directory, tmp_path / "tiny.zip")
    installed = fetch.import_model(archive, sha256=model_format.sha256_of(archive), cache_dir=cache)
    assert model_format.sha256_of(installed / model_format.WEIGHTS_FILE) == good
    model_format.load_model(installed)


def test_import_checks_hand_downloaded_registry_model(saved, tmp_path):
    _, directory = saved
    archive = zip_dir(directory, tmp_path / "tiny.zip")
    with pytest.raises(ModelError, match="claims to be tiny 1.0.0"):
        fetch.import_model(archive, cache_dir=tmp_path / "cache", registry=registry_for(archive, "a" * 64))
    fetch.import_model(archive, cache_dir=tmp_path / "cache", registry=registry_for(archive, model_format.sha256_of(archive)))


@pytest.mark.parametrize("member", ["../evil", "/abs/evil", "tiny/../../evil"])
def test_unsafe_archive_members_are_refused(tmp_path, member):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as bundle:
        info = tarfile.TarInfo(member)
        info.size = 4
        bundle.addfile(info, io.BytesIO(b"evil"))
    zipped = tmp_path / "evil.zip"
    with zipfile.ZipFile(zipped, "w") as bundle:
        bundle.writestr(member, "evil")
    for path in (archive, zipped):
        with pytest.raises(ModelError, match="unsafe member"):
            fetch.import_model(path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "evil").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as bundle:
        info = tarfile.TarInfo("tiny/model.safetensors")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bundle.addfile(info)
    with pytest.raises(ModelError, match="unsafe member"):
        fetch.import_model(archive, cache_dir=tmp_path / "cache")


def test_find_model_search_order(saved, tmp_path, monkeypatch, clean_env):
    module, directory = saved
    fetch.import_model(directory, cache_dir=clean_env)
    assert search.find_model("tiny") == clean_env / "tiny"
    override = tmp_path / "override"
    model_format.save_model(module, tiny_config(), override / "tiny", "card")
    monkeypatch.setenv("CALID_MODEL_DIR", str(override))
    assert search.find_model("tiny") == override / "tiny"
    with pytest.raises(ModelError, match=r"(?s)override/absent.*Models/absent.*calid models list") as err:
        search.find_model("absent")
    assert "models fetch" not in str(err.value)  # issue 18.13: fetch only for registry names
    with pytest.raises(ModelError, match="plain name"):
        search.find_model("../tiny")


def test_list_models_reports_installation(saved, tmp_path, clean_env):
    _, directory = saved
    archive = zip_dir(directory, tmp_path / "tiny.zip")
    registry = registry_for(archive, model_format.sha256_of(archive))
    registry["models"].append({**registry["models"][0], "name": "absent"})
    fetch.import_model(directory, cache_dir=clean_env)
    rows = {row["name"]: row for row in model_registry.list_models(registry)}
    assert rows["tiny"]["installed"] and rows["tiny"]["path"] == str(clean_env / "tiny")
    assert rows["tiny"]["installed_version"] == "1.0.0"
    assert not rows["absent"]["installed"]
    unlisted = {row["name"]: row for row in model_registry.list_models({"schema_version": 1, "models": []})}
    assert unlisted["tiny"]["in_registry"] is False


def test_bundled_registry_is_valid_and_consistent():
    registry = json.loads((MODELS_DIR / "models.json").read_text())
    model_registry.validate_registry(registry)
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((MODELS_DIR / "models.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(registry, schema)
    for entry in registry["models"]:
        if entry["bundled"]:
            assert entry["url"] is None
            model_dir = MODELS_DIR / entry["name"]
            assert model_format.read_config(model_dir).version == entry["version"]
            assert model_format.sha256_of(model_dir / model_format.WEIGHTS_FILE) == entry["sha256"]


def test_registry_structure_check_agrees_with_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((MODELS_DIR / "models.schema.json").read_text())
    good = registry_for(Path(__file__), "b" * 64)
    no_url = {**good["models"][0], "url": None}
    bad_hash = {**good["models"][0], "sha256": "B" * 64}
    extra_key = {**good["models"][0], "homepage": "x"}
    for entry in (no_url, bad_hash, extra_key):
        broken = {"schema_version": 1, "models": [entry]}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
        with pytest.raises(ModelError):
            model_registry.validate_registry(broken)
    jsonschema.validate(good, schema)
    model_registry.validate_registry(good)


def test_cli_list_info_and_import(saved, tmp_path, clean_env, capsys):
    _, directory = saved
    assert main(["models", "import", str(directory)]) == 0
    assert f"installed tiny 1.0.0 (test) in {clean_env / 'tiny'}" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tiny"]["path"] == str(clean_env / "tiny")
    assert main(["models", "list"]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["models", "info", "tiny", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["architecture"] == "test-tiny-mlp" and info["card"].startswith("# Tiny")
    assert main(["models", "info", "absent"]) == 2
    err = capsys.readouterr().err
    assert "absent" in err and "models fetch" not in err


def test_cli_fetch_unknown_model_fails_clearly(clean_env, capsys):
    assert main(["models", "fetch", "no-such-model"]) == 2
    assert "'no-such-model' is not in the registry" in capsys.readouterr().err
    assert not clean_env.exists() or list(clean_env.iterdir()) == []


def test_fetch_is_suggested_for_a_missing_registry_model_with_a_download(clean_env, monkeypatch, tmp_path):
    """Issue 18.13: `calid models fetch NAME` only where the registry can download NAME."""
    registry = {"schema_version": 1, "models": [
        {"name": "remote", "version": "1.0.0", "kind": "vae", "description": "d", "url": "https://example.org/r.zip",
         "sha256": "0" * 64, "size_bytes": 1, "license": "l", "bundled": False, "card": "remote/MODEL_CARD.md"},
        {"name": "shipped", "version": "1.0.0", "kind": "vae", "description": "d", "url": None,
         "sha256": None, "size_bytes": None, "license": "l", "bundled": True, "card": "shipped/MODEL_CARD.md"}]}
    monkeypatch.setattr(search, "REGISTRY_FILE", tmp_path / "models.json")
    (tmp_path / "models.json").write_text(json.dumps(registry))
    with pytest.raises(ModelError, match="calid models fetch remote"):
        search.find_model("remote")
    with pytest.raises(ModelError, match="bundled") as err:
        search.find_model("shipped")
    assert "models fetch" not in str(err.value)


def test_models_info_into_a_closed_pipe_ends_without_a_traceback():
    """Issue 18.13: `calid models info NAME | head` closed the pipe and got a BrokenPipeError traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "calid", "models", "info", "calid-vae-acdc"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before calid writes anything, like `head` after its lines
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err.decode() and "BrokenPipe" not in err.decode()
    assert proc.returncode == 0

