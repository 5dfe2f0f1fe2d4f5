"""Fixtures shared by the Slicer-side tests (real MRML scenes from slicer-core)."""

from __future__ import annotations

import pytest


@pytest.fixture
def colour_scene():
    """An MRML scene with Slicer's built-in colour tables, as in the application."""
    slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    colors.SetMRMLScene(None)
    return scene
