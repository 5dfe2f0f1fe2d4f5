"""MRML volume and sequence nodes <-> :class:`calid.io.volume.Volume`, with exact geometry.

Slicer nodes carry an IJK-to-RAS matrix; a Volume is LPS. The flip happens in
:mod:`calid.io.volume` only (``Volume.affine_ras`` one way, ``lps_to_ras_matrix`` — its own
inverse — the other). Voxel arrays travel through ``vtk.util.numpy_support`` in the
(Z, Y, X) order both vtkImageData and SimpleITK use.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from calid.errors import InputError
from calid.io.volume import Volume, lps_to_ras_matrix

#: Node attributes that record how an output was made ("visible to the user" in the Data module).
SYNTHESIZED_ATTRIBUTE = "CaLID.SynthesizedSlices"
METHOD_ATTRIBUTE = "CaLID.Method"
FACTOR_ATTRIBUTE = "CaLID.Factor"

#: Sequence index units -> milliseconds per unit (Volume.frame_times are ms).
_TIME_UNIT_MS = {"ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "us": 0.001}


def matrix_to_vtk(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    result = vtk.vtkMatrix4x4()
    for row in range(4):
        for col in range(4):
            result.SetElement(row, col, float(matrix[row, col]))
    return result


def vtk_to_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(row, col) for col in range(4)] for row in range(4)])


def image_data_from_array(array: np.ndarray) -> vtk.vtkImageData:
    """vtkImageData (origin 0, spacing 1: the node holds the geometry) holding a copy of a (Z, Y, X) array."""
    if array.ndim != 3:
        raise ValueError(f"array must be 3D (Z, Y, X), not {array.ndim}D")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    return image


def array_from_image_data(image: vtk.vtkImageData) -> np.ndarray:
    """A (Z, Y, X) copy of a one-component vtkImageData."""
    scalars = image.GetPointData().GetScalars() if image is not None else None
    if scalars is None:
        raise InputError("the volume has no voxels yet; load or compute an image first")
    if scalars.GetNumberOfComponents() != 1:
        raise InputError(
            f"the volume must have one value per voxel, not {scalars.GetNumberOfComponents()} "
            "(colour or vector images are not MR magnitude images)"
        )
    x, y, z = image.GetDimensions()
    return numpy_support.vtk_to_numpy(scalars).reshape(z, y, x).copy()


def set_calid_attributes(node, synthesized, method: str | None = None, factor: int | None = None) -> None:
    """Record which slices were synthesised (and how) on a node."""
    node.SetAttribute(SYNTHESIZED_ATTRIBUTE, ",".join(str(int(i)) for i in synthesized))
    if method is not None:
        node.SetAttribute(METHOD_ATTRIBUTE, str(method))
    if factor is not None:
        node.SetAttribute(FACTOR_ATTRIBUTE, str(int(factor)))


def synthesized_from_attribute(node) -> tuple[int, ...]:
    text = node.GetAttribute(SYNTHESIZED_ATTRIBUTE) or ""
    return tuple(int(item) for item in text.split(",") if item.strip())


def fill_sequence(sequence, cine: Volume, values, index_name: str, index_unit: str, new_node, fill_node) -> None:
    """Replace a sequence's data with one ``new_node()`` per frame, filled by ``fill_node(frame, node)``."""
    sequence.RemoveAllDataNodes()
    sequence.SetIndexName(index_name)
    sequence.SetIndexUnit(index_unit)
    sequence.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
    for t, (frame, value) in enumerate(zip(cine.frames(), values)):
        frame_node = new_node()
        frame_node.SetName(f"{sequence.GetName()} frame {t}")
        fill_node(frame, frame_node)
        sequence.SetDataNodeAtValue(frame_node, str(value))


def volume_to_node(volume: Volume, node) -> None:
    """Put a 3D Volume's voxels and geometry into a scalar volume (or labelmap) node."""
    if volume.is_cine:
        raise ValueError("a cine goes into a sequence node (cine_to_sequence), not one volume node")
    node.SetIJKToRASMatrix(matrix_to_vtk(volume.affine_ras()))
    node.SetAndObserveImageData(image_data_from_array(volume.array))
    if volume.synthesized:
        set_calid_attributes(node, volume.synthesized)


def node_to_volume(node) -> Volume:
    """A 3D Volume from a scalar volume node, in world coordinates (a linear parent transform is applied)."""
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
        kind = node.GetClassName() if node is not None else "nothing"
        raise InputError(f"the input must be a scalar volume node, not {kind}")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    ras = vtk_to_matrix(ijk_to_ras)
    transform = node.GetParentTransformNode()
    if transform is not None:
        if not transform.IsTransformToWorldLinear():
            raise InputError(
                f"volume {node.GetName()!r} is under a non-linear transform; harden it first "
                "(Data module: right-click the volume, 'Harden transform')"
            )
        to_world = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(to_world)
        ras = vtk_to_matrix(to_world) @ ras
    lps = lps_to_ras_matrix(ras)  # the flip is its own inverse
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    return Volume(
        array_from_image_data(node.GetImageData()),
        spacing=spacing,
        origin=lps[:3, 3],
        direction=lps[:3, :3] / spacing,
        synthesized=synthesized_from_attribute(node),
    )


# -- sequences (cine) ----------------------------------------------------------


def find_sequence_browser(scene, node):
    """``(browser, sequence)`` when ``node`` is the proxy a sequence browser plays, else None."""
    if node is None:
        return None
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode")):
        browser = scene.GetNthNodeByClass(index, "vtkMRMLSequenceBrowserNode")
        sequence = browser.GetSequenceNode(node)
        if sequence is not None:
            return browser, sequence
    return None


def frame_times_ms(sequence) -> tuple[float, ...]:
    """Frame times (ms) from the index values; frame numbers when the index is not a time."""
    count = sequence.GetNumberOfDataNodes()
    values = [sequence.GetNthIndexValue(i) for i in range(count)]
    scale = _TIME_UNIT_MS.get((sequence.GetIndexUnit() or "").strip().lower())
    if sequence.GetIndexType() != slicer.vtkMRMLSequenceNode.NumericIndex or scale is None:
        return tuple(float(i) for i in range(count))
    try:
        return tuple(float(value) * scale for value in values)
    except ValueError:
        return tuple(float(i) for i in range(count))


def sequence_to_cine(sequence) -> Volume:
    """A cine (T, Z, Y, X) from a sequence of scalar volumes that share one geometry."""
    count = sequence.GetNumberOfDataNodes()
    if count < 1:
        raise InputError(f"sequence {sequence.GetName()!r} has no frames")
    frames = [node_to_volume(sequence.GetNthDataNode(i)) for i in range(count)]
    for index, frame in enumerate(frames[1:], start=1):
        if not frame.same_geometry(frames[0], atol=1e-4):
            raise InputError(
                f"all frames of {sequence.GetName()!r} must share one geometry, not frame {index} differing "
                "from frame 0; resample the frames onto one grid first"
            )
    first = frames[0]
    return first.replace(array=np.stack([f.array for f in frames]), frame_times=frame_times_ms(sequence))


def cine_to_sequence(volume: Volume, sequence, index_values=None, index_name: str = "time", index_unit: str = "ms") -> None:
    """Fill a sequence node with one scalar volume per frame.

    ``index_values`` (strings) lets an output reuse its input's index exactly; by default
    the frame times in ms are used.
    """
    if not volume.is_cine:
        raise ValueError("cine_to_sequence needs a cine (T, Z, Y, X), not a 3D volume")
    values = list(index_values) if index_values is not None else [repr(t) for t in volume.frame_times or range(volume.n_frames)]
    if len(values) != volume.n_frames:
        raise ValueError(f"index_values must have one entry per frame ({volume.n_frames}), not {len(values)}")
    fill_sequence(sequence, volume, values, index_name, index_unit, slicer.vtkMRMLScalarVolumeNode, volume_to_node)
    if volume.synthesized:
        set_calid_attributes(sequence, volume.synthesized)


def index_of(sequence) -> dict:
    """The index values, name and unit of a sequence, to give an output the same index."""
    return {
        "index_values": [sequence.GetNthIndexValue(i) for i in range(sequence.GetNumberOfDataNodes())],
        "index_name": sequence.GetIndexName(),
        "index_unit": sequence.GetIndexUnit(),
    }


def add_sequence_browser(scene, sequences, name: str, sequences_logic=None):
    """A browser that plays ``sequences`` together; its proxy nodes appear in the scene.

    In Slicer pass ``slicer.modules.sequences.logic()``; elsewhere a logic bound to
    ``scene`` for this call only is used.
    """
    browser = slicer.vtkMRMLSequenceBrowserNode()
    browser.SetName(scene.GenerateUniqueName(name))
    scene.AddNode(browser)
    browser.SetAndObserveMasterSequenceNodeID(sequences[0].GetID())
    for sequence in sequences[1:]:
        browser.AddSynchronizedSequenceNodeID(sequence.GetID())
    logic = sequences_logic
    if logic is None:
        logic = slicer.vtkSlicerSequencesLogic()
        logic.SetMRMLScene(scene)
    try:
        logic.UpdateProxyNodesFromSequences(browser)
    finally:
        if sequences_logic is None:
            logic.SetMRMLScene(None)
    return browser


def describe_input(scene, node) -> str:
    """One line for the panel: is the input a 3D stack or a cine, and how sparse is it."""
    if node is None:
        return "no input selected"
    image = node.GetImageData()
    slices = image.GetDimensions()[2] if image is not None else 0
    spacing = node.GetSpacing()[2]
    found = find_sequence_browser(scene, node)
    if found is not None:
        frames = found[1].GetNumberOfDataNodes()
        return f"2D+T cine: {frames} frames x {slices} slices, {spacing:g} mm apart"
    return f"3D stack: {slices} slices, {spacing:g} mm apart"


def input_volume(scene, node, mode: str = "auto") -> tuple[Volume, object | None]:
    """The Volume a run starts from and, for a cine, its sequence node.

    A volume played by a sequence browser is a cine (all frames); mode ``2dt`` refuses
    anything else.
    """
    if node is None:
        raise InputError("choose an input volume first (a short-axis stack or a cine played by a sequence browser)")
    found = find_sequence_browser(scene, node)
    if found is not None:
        return sequence_to_cine(found[1]), found[1]
    if mode == "2dt":
        raise InputError(
            f"mode 2D+T needs a cine, not the single volume {node.GetName()!r}; choose a volume that a "
            "sequence browser plays (load a 4D file or a cine DICOM series) or use mode Auto/3D"
        )
    return node_to_volume(node), None
