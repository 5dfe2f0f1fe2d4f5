"""MRML scenes for the Slicer-side tests (slicer-core), shared by test files in subfolders."""

from __future__ import annotations


def colour_scene():
    """A scene with Slicer's built-in colour tables, as in the application."""
    import slicer

    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    colors.SetMRMLScene(None)
    return scene
