"""Make a run's synthesised slices and uncertainty visible in the slice views, not only attributes.

* The synthesised slices become a segmentation node "<output> synthesised slices" with one
  segment covering exactly those slices on the result's grid: an outline (and a faint fill)
  in the slice views that its eye icon toggles. A cine's frames share one grid and one set of
  synthesised slices, so one static node covers every frame.
* The uncertainty map gets a colour table, a window from zero to its high percentile and a
  threshold that hides the zero voxels (acquired slices, background), so laid over the
  result as the foreground layer it colours only where the model was unsure.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from calid.io.volume import Volume

from .nodes import set_calid_attributes, vtk_to_matrix
from .segments import oriented_image

SYNTHESISED_SEGMENT_ID = "synthesised_slices"
SYNTHESISED_SEGMENT_NAME = "Synthesised slices"
SYNTHESISED_COLOR = (1.0, 0.85, 0.1)
#: Fill opacity in the slice views (the outline is drawn fully): the image stays readable under it.
SYNTHESISED_FILL_OPACITY = 0.15
#: Foreground opacity of the uncertainty map over the result.
UNCERTAINTY_OPACITY = 0.5
#: Upper end of the uncertainty colour window: this percentile of the non-zero values.
UNCERTAINTY_WINDOW_PERCENTILE = 99.0


def synthesised_mask(dense: Volume) -> Volume:
    """A 3D uint8 Volume on ``dense``'s (first frame's) grid: 1 on every synthesised slice, 0 elsewhere."""
    grid = dense.frame(0) if dense.is_cine else dense
    mask = np.zeros(grid.array.shape, np.uint8)
    mask[list(dense.synthesized)] = 1
    return grid.replace(array=mask, synthesized=dense.synthesized)


def fill_synthesised_segmentation(dense: Volume, node) -> None:
    """Replace ``node``'s segments with one segment over the synthesised slices of ``dense``."""
    mask = synthesised_mask(dense)
    segmentation = node.GetSegmentation()
    segmentation.RemoveAllSegments()
    representation = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    segmentation.SetSourceRepresentationName(representation)
    segment = slicer.vtkSegment()
    segment.SetName(SYNTHESISED_SEGMENT_NAME)
    segment.SetColor(*SYNTHESISED_COLOR)
    segment.SetLabelValue(1)
    segment.AddRepresentation(representation, oriented_image(mask.array, mask))
    segmentation.AddSegment(segment, SYNTHESISED_SEGMENT_ID)
    set_calid_attributes(node, dense.synthesized)
    display = node.GetDisplayNode()
    if display is not None:
        display.SetOpacity2DFill(SYNTHESISED_FILL_OPACITY)
        display.SetOpacity2DOutline(1.0)
        display.SetVisibility3D(False)  # a stack of slabs would hide the heart in 3D


def synthesised_array(node) -> tuple[np.ndarray, np.ndarray]:
    """(Z, Y, X) voxels of the synthesised-slices segment and its IJK-to-RAS matrix (to check or export it)."""
    representation = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    image = node.GetSegmentation().GetSegment(SYNTHESISED_SEGMENT_ID).GetRepresentation(representation)
    x, y, z = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(z, y, x)
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    return array.copy(), vtk_to_matrix(matrix)


def style_uncertainty(node, uncertainty: Volume) -> None:
    """Window [0, high percentile] and hide zeros, so only uncertain voxels are coloured."""
    display = node.GetDisplayNode()
    if display is None:
        return
    values = np.asarray(uncertainty.array, np.float64)
    positive = values[values > 0]
    top = float(np.percentile(positive, UNCERTAINTY_WINDOW_PERCENTILE)) if positive.size else 1.0
    top = top if top > 0 else 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, top)
    display.AutoThresholdOff()
    display.SetLowerThreshold(float(positive.min()) if positive.size else top)
    display.SetUpperThreshold(float(values.max()) if values.size else top)
    display.ApplyThresholdOn()


def show_over(scene, background_id: str, foreground_id: str | None, opacity: float = UNCERTAINTY_OPACITY) -> int:
    """Put the result in every slice view's background and ``foreground_id`` (the uncertainty) over it.

    Returns the number of slice views set (0 in a scene without views, e.g. batch scripts).
    """
    count = scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")
    for index in range(count):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        composite.SetBackgroundVolumeID(background_id)
        composite.SetForegroundVolumeID(foreground_id or "")
        composite.SetForegroundOpacity(opacity if foreground_id else 0.0)
    return count


def set_visible(scene, node_id: str, visible: bool) -> None:
    """Show or hide a node in the views (what its eye icon does)."""
    node = scene.GetNodeByID(node_id)
    if node is None:
        raise ValueError(f"node {node_id} is no longer in the scene")
    display = node.GetDisplayNode()
    if display is None:
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
    display.SetVisibility(bool(visible))
