"""The panel's time estimate before Apply: the engine's own estimate for the arguments the run will use.

The input node is measured (frames, slices, pixels, slice spacing) without copying voxels;
the run's CLI arguments (:meth:`.parameters.CaLIDParameters.cli_arguments`) are parsed by
the engine's own parser and handed to the same function ``calid reconstruct`` uses to
print its estimate, so panel and CLI cannot disagree. Only the engine times this CPU (a speed
probe needs the models loaded); the panel shows the calibrated estimate until the run's own
estimate arrives.
"""

from __future__ import annotations

from pathlib import Path

from calid.errors import InputError

from .nodes import find_sequence_browser
from .parameters import CaLIDParameters, RunFiles


def input_shape(scene, node) -> tuple[tuple[int, ...], float]:
    """((T,) Z, Y, X) of the input as a run would read it, and its slice spacing in mm."""
    if node is None:
        raise InputError("choose an input volume first")
    image = node.GetImageData()
    if image is None:
        raise InputError(f"volume {node.GetName()!r} has no voxels yet")
    x, y, z = image.GetDimensions()
    shape: tuple[int, ...] = (z, y, x)
    found = find_sequence_browser(scene, node)
    if found is not None:
        shape = (found[1].GetNumberOfDataNodes(), *shape)
    return shape, float(node.GetSpacing()[2])


def estimate_run(scene, parameters: CaLIDParameters, *, calid_available: bool):
    """The engine's :class:`calid.methods.estimate.Estimate` for this run (raises InputError when it cannot start)."""
    from calid.cli import build_parser
    from calid.commands.run_estimate import estimate_for_args

    node = scene.GetNodeByID(parameters.input_volume) if parameters.input_volume else None
    shape, slice_spacing = input_shape(scene, node)
    files = RunFiles.in_folder(Path("estimate"), cine=len(shape) == 4, uncertainty=parameters.uncertainty,
                               segmentation=parameters.segmentation)
    args = build_parser().parse_args(parameters.cli_arguments(files, calid_available=calid_available))
    return estimate_for_args(args, shape, slice_spacing, probe=False)  # no model loaded into Slicer itself


def estimate_line(scene, parameters: CaLIDParameters, *, calid_available: bool) -> str:
    """One status line: 'Estimate: about 3 min on this CPU (...)', or why there is none."""
    try:
        return f"Estimate: {estimate_run(scene, parameters, calid_available=calid_available).text()}"
    except InputError as err:
        return str(err)
