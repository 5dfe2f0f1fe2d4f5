"""Shared test fixtures: small volumes with oblique geometry, and the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (or $CALID_SHARED_DATA)."""
    return Path(os.environ.get("CALID_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (it lives beside the checkout as ../shared/data)")
    return path


def oblique_direction() -> np.ndarray:
    """A proper rotation that is not axis-aligned (columns are the axes)."""
    a, b, c = np.deg2rad([20.0, -35.0, 50.0])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture
def oblique_stack():
    """A 3D stack (Z=6, Y=20, X=24) with non-identity spacing, origin and direction."""
    from calid.io.volume import Volume

    rng = np.random.default_rng(7)
    array = rng.integers(0, 3000, size=(6, 20, 24)).astype(np.int16)
    return Volume(array, spacing=(1.37, 1.52, 10.0), origin=(-12.5, 40.25, 77.0), direction=oblique_direction())


@pytest.fixture
def oblique_cine():
    """A cine (T=4, Z=5, Y=16, X=18) with oblique geometry and frame times."""
    from calid.io.volume import Volume

    rng = np.random.default_rng(11)
    array = rng.normal(100, 20, size=(4, 5, 16, 18)).astype(np.float32)
    return Volume(
        array,
        spacing=(1.4, 1.4, 8.0),
        origin=(3.0, -7.5, 21.0),
        direction=oblique_direction(),
        frame_times=(0.0, 40.0, 80.0, 120.0),
    )


def _slicer_core():
    """Slicer's MRML core (pip install slicer-core), or skip the test."""
    slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)")
    return slicer


@pytest.fixture
def scene():
    """An empty real MRML scene."""
    return _slicer_core().vtkMRMLScene()


@pytest.fixture
def sequences_logic(scene):
    """Slicer's Sequences logic bound to ``scene`` (needed for sequence browsers)."""
    logic = _slicer_core().vtkSlicerSequencesLogic()
    logic.SetMRMLScene(scene)
    yield logic
    logic.SetMRMLScene(None)
