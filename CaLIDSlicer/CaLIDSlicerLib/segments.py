"""Labelmap Volumes -> segmentation nodes with named, coloured cardiac segments (from calid.segmentation.labels).

All segments share one labelmap layer on the input's exact grid (a
``vtkOrientedImageData`` with the IJK-to-RAS matrix; segment label value = ACDC value), so no temporary labelmap node
or colour table ever enters the scene, and frames of a cine can be converted
without a scene at all.
"""

from __future__ import annotations

import numpy as np
import slicer

from calid.segmentation.labels import CARDIAC_STRUCTURES, Structure
from calid.io.volume import Volume

from .nodes import fill_sequence, image_data_from_array, matrix_to_vtk, set_calid_attributes


def segment_id(structure: Structure) -> str:
    """Stable segment ID (so scripts can find "LV blood pool" without searching by name)."""
    return structure.name.replace(" ", "_")


def oriented_image(array: np.ndarray, labels: Volume):
    """A vtkOrientedImageData of ``array`` (Z, Y, X) placed exactly on the labelmap's grid."""
    image = slicer.vtkOrientedImageData()
    image.DeepCopy(image_data_from_array(array))
    image.SetImageToWorldMatrix(matrix_to_vtk(labels.affine_ras()))
    return image


def check_label_values(labels: Volume, structures: tuple[Structure, ...] = CARDIAC_STRUCTURES) -> None:
    """Refuse label values that are neither background nor a known structure."""
    known = {item.value for item in structures}
    unknown = sorted(set(np.unique(labels.array).tolist()) - known - {0})
    if unknown:
        raise ValueError(f"label values must be 0 or one of {sorted(known)}, not {unknown}")


def labels_to_segmentation(
    labels: Volume, node, structures: tuple[Structure, ...] = CARDIAC_STRUCTURES
) -> None:
    """Replace the segments of ``node`` with one segment per cardiac structure (empty ones too).

    Every structure gets a segment, so a structure the model did not find shows up as an
    empty segment rather than silently missing. Values outside ``structures`` are refused.
    """
    if labels.is_cine:
        raise ValueError("a cine of labels goes into a sequence of segmentations, one frame at a time")
    check_label_values(labels, structures)
    segmentation = node.GetSegmentation()
    segmentation.RemoveAllSegments()
    representation = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    segmentation.SetSourceRepresentationName(representation)
    shared = oriented_image(labels.array.astype(np.uint8), labels)  # one layer, as Slicer stores it
    for item in structures:
        segment = slicer.vtkSegment()
        segment.SetName(item.name)
        segment.SetColor(*item.color)
        segment.SetLabelValue(item.value)
        segment.AddRepresentation(representation, shared)
        segmentation.AddSegment(segment, segment_id(item))
    if labels.synthesized:
        set_calid_attributes(node, labels.synthesized)


def cine_labels_to_sequence(labels: Volume, sequence, index_values, index_name: str = "time", index_unit: str = "ms") -> None:
    """Fill a sequence node with one segmentation per frame of a cine labelmap."""
    if not labels.is_cine:
        raise ValueError("cine_labels_to_sequence needs a cine labelmap (T, Z, Y, X)")
    fill_sequence(sequence, labels, index_values, index_name, index_unit, slicer.vtkMRMLSegmentationNode,
                  labels_to_segmentation)
