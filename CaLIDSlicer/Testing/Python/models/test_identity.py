"""A model's identity (name, version, SHA-256 of its weights), hashed once per file state."""

from __future__ import annotations

import hashlib
import os

import pytest

import calid.models.identity as identity
from calid.models.search import find_model


def test_weights_are_hashed_once_per_file_state(tmp_path, monkeypatch):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"first weights")
    calls = []
    real = identity.sha256_of
    monkeypatch.setattr(identity, "sha256_of", lambda path: calls.append(path) or real(path))

    first = identity.weights_sha256(weights)
    assert first == hashlib.sha256(b"first weights").hexdigest()
    assert identity.weights_sha256(weights) == first and len(calls) == 1  # loaded again: not read again

    weights.write_bytes(b"other weights, other size")
    os.utime(weights, ns=(1, 1))
    assert identity.weights_sha256(weights) == hashlib.sha256(b"other weights, other size").hexdigest()
    assert len(calls) == 2  # a replaced file is hashed anew


def test_a_loaded_network_knows_the_file_it_came_from():
    try:
        directory = find_model("calid-vae-acdc")
    except Exception as err:  # noqa: BLE001 - any reason the model is missing
        pytest.skip(f"the bundled VAE is not installed: {err}")
    network, config = identity.load_identified(directory)
    record = identity.identity_of(network)
    weights = directory / "model.safetensors"
    assert record["name"] == config.name and record["version"] == config.version and record["kind"] == "vae"
    assert record["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert record["path"] == str(weights.resolve())
    assert identity.identity_of(object()) is None  # built in memory, never loaded from a folder
