"""Files calid writes load back through Slicer's own storage nodes (slicer-core MRML)."""

from __future__ import annotations

import numpy as np
import pytest

from calid import io
from calid.segmentation.labels import CARDIAC_STRUCTURES

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML (pip install slicer-core)", allow_module_level=True)
vtk = pytest.importorskip("vtk")
from vtk.util import numpy_support  # noqa: E402


def matrix_to_numpy(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(row, col) for col in range(4)] for row in range(4)])


def ijk_to_ras(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return matrix_to_numpy(matrix)


def voxels(volume_node) -> np.ndarray:
    image = volume_node.GetImageData()
    x, y, z = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(z, y, x)


def load_with(scene, storage_class, node_class, path):
    node = node_class()
    scene.AddNode(node)
    storage = storage_class()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1, f"Slicer could not read {path}"
    return node


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.mark.parametrize("name", ["stack.nrrd", "stack.nii.gz", "stack.mha"])
def test_volume_loads_with_same_ijk_to_ras_and_voxels(tmp_path, scene, oblique_stack, name):
    path = io.write(oblique_stack, tmp_path / name)
    node = load_with(scene, slicer.vtkMRMLVolumeArchetypeStorageNode, slicer.vtkMRMLScalarVolumeNode, path)
    np.testing.assert_allclose(ijk_to_ras(node), oblique_stack.affine_ras(), atol=1e-4)
    np.testing.assert_array_equal(voxels(node), oblique_stack.array)


def test_sequence_loads_with_one_node_per_frame_and_frame_times(tmp_path, scene, oblique_cine):
    cine = oblique_cine.replace(frame_times=(0.0, 33.5, 80.25, 131.0))
    path = io.write(cine, tmp_path / "cine.seq.nrrd")
    sequence = load_with(scene, slicer.vtkMRMLVolumeSequenceStorageNode, slicer.vtkMRMLSequenceNode, path)
    assert sequence.GetNumberOfDataNodes() == cine.n_frames
    times = [float(sequence.GetNthIndexValue(t)) for t in range(cine.n_frames)]
    assert times == list(cine.frame_times)
    assert sequence.GetIndexUnit() == "ms"
    for t in (0, cine.n_frames - 1):
        frame = sequence.GetNthDataNode(t)
        np.testing.assert_allclose(ijk_to_ras(frame), cine.affine_ras(), atol=1e-9)
        np.testing.assert_array_equal(voxels(frame), cine.array[t])


def test_segmentation_loads_with_named_coloured_segments(tmp_path, scene, oblique_stack):
    labels = oblique_stack.replace(array=(oblique_stack.array % 4).astype(np.uint8))
    path = io.write_segmentation(labels, tmp_path / "labels.seg.nrrd")
    node = load_with(scene, slicer.vtkMRMLSegmentationStorageNode, slicer.vtkMRMLSegmentationNode, path)
    segmentation = node.GetSegmentation()
    segments = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
    assert [s.GetName() for s in segments] == [item.name for item in CARDIAC_STRUCTURES]
    for segment, item in zip(segments, CARDIAC_STRUCTURES):
        np.testing.assert_allclose(segment.GetColor(), item.color, atol=1e-6)
        assert segment.GetLabelValue() == item.value
    assert len({segmentation.GetSegmentIdBySegment(s) for s in segments}) == len(CARDIAC_STRUCTURES)
    # one shared labelmap layer whose geometry is the labels' geometry
    assert segmentation.GetNumberOfLayers() == 1
    layer = segmentation.GetNthSegment(0).GetRepresentation("Binary labelmap")
    image_to_world = vtk.vtkMatrix4x4()
    layer.GetImageToWorldMatrix(image_to_world)
    np.testing.assert_allclose(matrix_to_numpy(image_to_world), labels.affine_ras(), atol=1e-9)
    x0, x1, y0, y1, z0, z1 = layer.GetExtent()
    stored = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars()).reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)
    np.testing.assert_array_equal(stored, labels.array[z0:z1 + 1, y0:y1 + 1, x0:x1 + 1])
    assert (x1 - x0 + 1, y1 - y0 + 1, z1 - z0 + 1) == labels.array.shape[::-1]
