"""MRML nodes <-> Volume with Slicer's real MRML core (slicer-core): geometry survives exactly."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)",
                allow_module_level=True)
vtk = pytest.importorskip("vtk")

from calid.errors import InputError  # noqa: E402
from calid.segmentation.labels import CARDIAC_STRUCTURES  # noqa: E402
from calid.io.volume import Volume  # noqa: E402
from CaLIDSlicerLib.nodes import (  # noqa: E402
    SYNTHESIZED_ATTRIBUTE,
    add_sequence_browser,
    cine_to_sequence,
    describe_input,
    input_volume,
    node_to_volume,
    sequence_to_cine,
    volume_to_node,
    vtk_to_matrix,
)
from CaLIDSlicerLib.segments import labels_to_segmentation, segment_id  # noqa: E402


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return vtk_to_matrix(matrix)


def add_cine(scene, cine, logic):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    cine_to_sequence(cine, sequence)
    browser = add_sequence_browser(scene, [sequence], "cine browser", logic)
    return browser.GetProxyNode(sequence), sequence


def test_oblique_volume_round_trip_keeps_voxels_and_geometry(scene, oblique_stack):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sax")
    volume_to_node(oblique_stack, node)
    back = node_to_volume(node)
    np.testing.assert_array_equal(back.array, oblique_stack.array)
    assert back.array.dtype == oblique_stack.array.dtype
    np.testing.assert_allclose(back.spacing, oblique_stack.spacing, atol=1e-9)
    np.testing.assert_allclose(back.origin, oblique_stack.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, oblique_stack.direction, atol=1e-9)


def test_node_ijk_to_ras_is_the_volume_affine_ras(scene, oblique_stack):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    volume_to_node(oblique_stack, node)
    np.testing.assert_allclose(ijk_to_ras(node), oblique_stack.affine_ras(), atol=1e-9)
    # RAS of the first voxel is the LPS origin with x and y negated
    np.testing.assert_allclose(node.GetOrigin(), np.array(oblique_stack.origin) * [-1, -1, 1], atol=1e-9)
    # Slicer's vtkImageData is indexed (x, y, z): voxel (x=3, y=2, z=1) is array[1, 2, 3]
    assert node.GetImageData().GetScalarComponentAsDouble(3, 2, 1, 0) == oblique_stack.array[1, 2, 3]


def test_synthesized_slices_travel_as_a_node_attribute(scene, oblique_stack):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    volume_to_node(oblique_stack.replace(synthesized=(1, 3)), node)
    assert node.GetAttribute(SYNTHESIZED_ATTRIBUTE) == "1,3"
    assert node_to_volume(node).synthesized == (1, 3)


def test_linear_parent_transform_is_applied(scene, oblique_stack):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    volume_to_node(oblique_stack, node)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 5.0)  # +5 mm towards R = -5 mm in LPS x
    transform.SetMatrixTransformToParent(shift)
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = node_to_volume(node)
    np.testing.assert_allclose(moved.origin, np.add(oblique_stack.origin, (-5.0, 0.0, 0.0)), atol=1e-9)
    np.testing.assert_allclose(moved.direction, oblique_stack.direction, atol=1e-9)


def test_non_scalar_input_is_refused(scene):
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(InputError, match="scalar volume"):
        node_to_volume(segmentation)


def test_cine_sequence_round_trip_keeps_frames_times_and_geometry(scene, oblique_cine, sequences_logic):
    proxy, sequence = add_cine(scene, oblique_cine, sequences_logic)
    assert sequence.GetNumberOfDataNodes() == oblique_cine.n_frames
    assert sequence.GetIndexUnit() == "ms"
    back = sequence_to_cine(sequence)
    np.testing.assert_array_equal(back.array, oblique_cine.array)
    assert back.frame_times == oblique_cine.frame_times
    assert back.same_geometry(oblique_cine, atol=1e-9)
    np.testing.assert_allclose(ijk_to_ras(proxy), oblique_cine.affine_ras(), atol=1e-9)


def test_sequence_in_seconds_gives_frame_times_in_ms(scene, oblique_cine):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    cine_to_sequence(oblique_cine, sequence, index_values=["0", "0.04", "0.08", "0.12"], index_unit="s")
    np.testing.assert_allclose(sequence_to_cine(sequence).frame_times, (0.0, 40.0, 80.0, 120.0))


def test_sequence_without_time_unit_gives_frame_numbers(scene, oblique_cine):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    cine_to_sequence(oblique_cine, sequence, index_values=["10", "20", "30", "40"], index_name="frame", index_unit="")
    assert sequence_to_cine(sequence).frame_times == (0.0, 1.0, 2.0, 3.0)


def test_proxy_of_a_browser_is_read_as_the_whole_cine(scene, oblique_cine, sequences_logic):
    proxy, _ = add_cine(scene, oblique_cine, sequences_logic)
    volume, sequence = input_volume(scene, proxy, "auto")
    assert volume.is_cine and volume.n_frames == oblique_cine.n_frames
    assert sequence is not None
    assert describe_input(scene, proxy) == "2D+T cine: 4 frames x 5 slices, 8 mm apart"


def test_mode_2dt_refuses_a_single_volume(scene, oblique_stack):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sax")
    volume_to_node(oblique_stack, node)
    assert describe_input(scene, node) == "3D stack: 6 slices, 10 mm apart"
    with pytest.raises(InputError, match="2D\\+T needs a cine"):
        input_volume(scene, node, "2dt")
    volume, sequence = input_volume(scene, node, "3d")
    assert not volume.is_cine and sequence is None


def test_frames_with_different_geometry_are_refused(scene, oblique_cine):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    cine_to_sequence(oblique_cine, sequence)
    shifted = oblique_cine.frame(1).replace(origin=(0.0, 0.0, 0.0))
    frame = slicer.vtkMRMLScalarVolumeNode()
    volume_to_node(shifted, frame)
    sequence.SetDataNodeAtValue(frame, sequence.GetNthIndexValue(1))
    with pytest.raises(InputError, match="share one geometry"):
        sequence_to_cine(sequence)


def labels_like(volume: Volume) -> Volume:
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[2, 5:10, 6:12] = 3
    labels[2, 4:11, 5:6] = 2
    labels[3, 8:12, 14:18] = 1
    return volume.replace(array=labels)


def test_labels_become_named_coloured_segments_on_the_same_grid(scene, oblique_stack):
    labels = labels_like(oblique_stack)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    node.CreateDefaultDisplayNodes()
    labels_to_segmentation(labels, node)
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(CARDIAC_STRUCTURES)
    for item in CARDIAC_STRUCTURES:
        segment = segmentation.GetSegment(segment_id(item))
        assert segment.GetName() == item.name
        np.testing.assert_allclose(segment.GetColor(), item.color, atol=1e-6)
        image = segment.GetRepresentation("Binary labelmap")
        to_world = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(to_world)
        np.testing.assert_allclose(vtk_to_matrix(to_world), labels.affine_ras(), atol=1e-9)
        voxels = vtk.util.numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(labels.array.shape)
        np.testing.assert_array_equal(voxels == segment.GetLabelValue(), labels.array == item.value)


def test_unknown_label_values_are_refused(scene, oblique_stack):
    labels = oblique_stack.replace(array=np.full(oblique_stack.array.shape, 7, np.uint8))
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(ValueError, match="not \\[7\\]"):
        labels_to_segmentation(labels, node)
    assert node.GetSegmentation().GetNumberOfSegments() == 0
