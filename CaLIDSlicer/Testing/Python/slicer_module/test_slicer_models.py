"""The panel's model section: the engine's model list as rows, and importing a model copied by hand.

Listing and importing run the real engine in a child process (as the panel does) against a
user cache inside the test's folder.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from calid.models.format import CONFIG_FILE, WEIGHTS_FILE, ModelConfig, read_config, save_model, sha256_of
from calid.models.search import BUNDLED_DIR
from CaLIDSlicerLib.models import (
    ModelCallFailed,
    ModelRow,
    import_model_file,
    import_path,
    list_installed,
    rows_from_listing,
)


@pytest.fixture
def user_cache(monkeypatch, tmp_path) -> Path:
    """No CALID_MODEL_DIR; the user cache (for this process and the engine child) inside tmp_path."""
    monkeypatch.delenv("CALID_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "calid" / "models"


@pytest.fixture
def hand_copied_model(tmp_path) -> Path:
    """A small model folder as an offline site receives it (config, safetensors, card)."""
    torch.manual_seed(0)
    config = ModelConfig("site-segmenter", "0.3.0", "segmenter", "unused-here", {"width": 4}, {})
    return save_model(torch.nn.Linear(3, 4), config, tmp_path / "usb" / "site-segmenter",
                              "# Site segmenter\nA test model.")


def zipped(model_dir: Path) -> Path:
    archive = model_dir.parent / f"{model_dir.name}.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in model_dir.iterdir():
            bundle.write(file, f"{model_dir.name}/{file.name}")
    return archive


def test_listing_rows_say_where_each_model_is(tmp_path):
    bundled, cache, env_dir = tmp_path / "bundled", tmp_path / "cache", tmp_path / "env"
    listing = [
        {"name": "calid-vae-acdc", "kind": "vae", "installed": True, "path": str(bundled / "calid-vae-acdc"),
         "installed_version": "2.0.0", "installed_kind": "vae"},
        {"name": "calid-denoiser-acdc", "kind": "denoiser", "installed": False, "path": None, "installed_version": None},
        {"name": "mine", "installed": True, "path": str(cache / "mine"), "installed_version": "0.1.0",
         "installed_kind": "segmenter"},
        {"name": "site", "installed": True, "path": str(env_dir / "site"), "installed_version": "1.0.0",
         "installed_kind": "denoiser-2dt"},
    ]
    rows = rows_from_listing(listing, bundled_dir=bundled, cache_dir=cache, env_dir=str(env_dir))
    assert [row.where for row in rows] == ["bundled", "not installed", "user cache", "$CALID_MODEL_DIR"]
    assert [row.installed for row in rows] == [True, False, True, True]
    assert rows[0].text() == "calid-vae-acdc 2.0.0 (CaLID (autoencoder)): bundled"
    assert rows[1].text() == "calid-denoiser-acdc (CaLID 3D): not installed"
    assert rows[3].text() == "site 1.0.0 (CaLID 2D+T): $CALID_MODEL_DIR"


def test_the_engine_lists_the_bundled_models(user_cache):
    rows = {row.name: row for row in list_installed()}
    for name in ("calid-vae-acdc", "calid-denoiser-acdc", "calid-denoiser-2dt-acdc", "calid-segmenter-acdc"):
        assert rows[name].where == "bundled", rows[name]
        assert rows[name].version == read_config(BUNDLED_DIR / name).version


def test_an_archive_with_its_checksum_is_installed_and_then_listed(user_cache, hand_copied_model):
    archive = zipped(hand_copied_model)
    message = import_model_file(archive, sha256=f"  {sha256_of(archive).upper()} ")
    assert "installed site-segmenter 0.3.0" in message and "runs still use" not in message
    assert sha256_of(user_cache / "site-segmenter" / WEIGHTS_FILE) == sha256_of(
        hand_copied_model / WEIGHTS_FILE)
    row = {row.name: row for row in list_installed()}["site-segmenter"]
    assert row == ModelRow("site-segmenter", "segmenter", "0.3.0", "user cache")


def test_a_chosen_config_json_imports_its_folder(user_cache, hand_copied_model):
    assert import_path(hand_copied_model / "config.json") == hand_copied_model
    import_model_file(hand_copied_model / "config.json",
                      sha256=sha256_of(hand_copied_model / WEIGHTS_FILE))
    assert (user_cache / "site-segmenter" / CONFIG_FILE).is_file()


def test_a_wrong_checksum_installs_nothing_and_says_so(user_cache, hand_copied_model):
    archive = zipped(hand_copied_model)
    with pytest.raises(ModelCallFailed, match=f"importing {archive.name} failed: .*SHA-256 .* expected 0{{64}}"):
        import_model_file(archive, sha256="0" * 64)
    assert not (user_cache / "site-segmenter").exists()
    assert "site-segmenter" not in {row.name for row in list_installed()}


def test_without_a_checksum_the_message_says_the_file_was_not_verified(user_cache, hand_copied_model):
    """A site's own build is not in the registry: the engine installs it, the panel says nothing vouched for it."""
    message = import_model_file(zipped(hand_copied_model))
    assert "installed site-segmenter 0.3.0" in message and "no SHA-256 given" in message
    assert "runs still use" not in message  # the note must not be read as part of the install path
    assert "no SHA-256" not in import_model_file(zipped(hand_copied_model), sha256=sha256_of(
        hand_copied_model.parent / "site-segmenter.zip"))


def test_importing_a_copy_of_a_bundled_model_says_the_bundled_one_is_still_used(user_cache, tmp_path):
    bundled = BUNDLED_DIR / "calid-segmenter-acdc"
    copy = tmp_path / "usb" / "calid-segmenter-acdc"
    copy.parent.mkdir()
    shutil.copytree(bundled, copy)
    message = import_model_file(copy / "config.json", sha256=sha256_of(copy / WEIGHTS_FILE))
    assert f"runs still use the copy in {BUNDLED_DIR}" in message
    assert (user_cache / "calid-segmenter-acdc" / CONFIG_FILE).is_file()


def test_a_broken_copy_in_the_cache_is_shown_as_unusable(user_cache):
    broken = user_cache / "calid-extra"
    broken.mkdir(parents=True)
    (broken / CONFIG_FILE).write_text("{not json", encoding="utf-8")
    row = {row.name: row for row in list_installed()}["calid-extra"]
    assert not row.installed and row.where == "user cache"
    assert row.text().startswith("calid-extra (?): unusable copy in user cache: ") and "not a valid model config" in row.text()


def test_a_missing_file_is_named(user_cache, tmp_path):
    with pytest.raises(ModelCallFailed, match="does not exist; choose the model archive"):
        import_model_file(tmp_path / "nowhere.zip")
