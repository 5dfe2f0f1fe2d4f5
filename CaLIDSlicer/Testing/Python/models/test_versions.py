"""Model versions are semantic MAJOR.MINOR.PATCH everywhere: config, weights metadata, registry, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from calid.errors import ModelError
from calid.models import format as model_format
from calid.models import registry as model_registry
from calid.models.format import ModelConfig, check_version, load_model, read_config, save_model, sha256_of
from calid.models.versioning import set_version

MODELS_DIR = Path(model_format.__file__).resolve().parents[2] / "Resources" / "Models"
NOT_SEMVER = ("1", "2", "1.0", "01.0.0", "1.0.0-rc1", "v1.0.0", "1.0.0 ", "1..0", "", 3)


@pytest.mark.parametrize("version", NOT_SEMVER)
def test_a_version_that_is_not_semver_is_refused(version):
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
        check_version(version)


@pytest.mark.parametrize("version", ("0.0.0", "1.0.0", "2.10.3", "10.0.1"))
def test_semver_versions_pass(version):
    assert check_version(version) == version
    assert ModelConfig("m", version, "vae", "calid-vae").version == version


def test_a_config_file_with_an_old_version_gets_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"name": "m", "version": "2", "kind": "vae", "architecture": "calid-vae"}))
    with pytest.raises(ModelError, match=r"config\.json is not a valid model config: version must be semantic"):
        read_config(tmp_path)


def test_the_registry_refuses_a_version_that_is_not_semver():
    registry = json.loads((MODELS_DIR / "models.json").read_text())
    model_registry.validate_registry(registry)
    registry["models"][0]["version"] = "1"
    with pytest.raises(ModelError, match="version must be semantic"):
        model_registry.validate_registry(registry)
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(registry, json.loads((MODELS_DIR / "models.schema.json").read_text()))


def test_every_bundled_model_has_one_semver_version_in_config_weights_registry_and_card():
    from safetensors import safe_open

    for entry in json.loads((MODELS_DIR / "models.json").read_text())["models"]:
        directory = MODELS_DIR / entry["name"]
        check_version(entry["version"])
        with safe_open(str(directory / "model.safetensors"), framework="pt") as handle:
            assert handle.metadata()["version"] == entry["version"] == read_config(directory).version
        title = (directory / "MODEL_CARD.md").read_text().splitlines()[0]
        assert title == f"# {entry['name']} {entry['version']}"


def _old_style_model(directory: Path) -> torch.nn.Module:
    """A model as an older calid wrote it: version "2" in config.json and in the weights' metadata."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4))
    save_model(module, ModelConfig("old", "0.0.0", "test", "test-tiny-seq"), directory, "# old\n")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "version": "2"}))
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(directory / "model.safetensors"),
              metadata={"name": "old", "version": "2"})
    return module


@model_format.register_architecture("test-tiny-seq")
def _tiny_seq() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 4))


def test_set_version_restamps_an_old_model_with_its_tensors_unchanged(tmp_path):
    directory = tmp_path / "old"
    module = _old_style_model(directory)
    before = sha256_of(directory / "model.safetensors")
    with pytest.raises(ModelError, match="version must be semantic"):
        load_model(directory)
    after = set_version(directory, "2.0.0")
    assert after == sha256_of(directory / "model.safetensors") != before
    loaded, config = load_model(directory)
    assert config.version == "2.0.0"
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []  # no staged file left


def test_set_version_refuses_a_bad_version_before_touching_the_files(tmp_path):
    directory = tmp_path / "old"
    _old_style_model(directory)
    before = sha256_of(directory / "model.safetensors")
    with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
        set_version(directory, "3")
    assert sha256_of(directory / "model.safetensors") == before
    assert json.loads((directory / "config.json").read_text())["version"] == "2"
