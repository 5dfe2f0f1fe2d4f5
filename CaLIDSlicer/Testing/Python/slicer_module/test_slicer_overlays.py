"""Synthesised slices as a visible segment and uncertainty as a colour overlay, on real MRML scenes."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)",
                allow_module_level=True)

from CaLIDSlicerLib.logic import ReconstructionRun  # noqa: E402
from CaLIDSlicerLib.nodes import SYNTHESIZED_ATTRIBUTE, volume_to_node  # noqa: E402
from CaLIDSlicerLib.outputs import LoadedOutputs, add_output_nodes  # noqa: E402
from CaLIDSlicerLib.overlays import set_visible, show_over, synthesised_array  # noqa: E402
from CaLIDSlicerLib.parameters import CaLIDParameters  # noqa: E402

CINE_INDEX = {"index_values": ["0", "40", "80", "120"], "index_name": "time", "index_unit": "ms"}


@pytest.fixture
def scene():
    from mrml_scenes import colour_scene

    return colour_scene()


def node_ids(scene) -> list[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def nodes_named(scene, name: str) -> list:
    return [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes()) if scene.GetNthNode(i).GetName() == name]


def dense_outputs(volume, factor: int = 3, uncertainty: bool = True) -> LoadedOutputs:
    """A made-up result on ``volume``'s grid: slices not on the factor grid are synthesised."""
    synthesized = tuple(i for i in range(volume.n_slices) if i % factor)
    dense = volume.replace(synthesized=synthesized)
    std = None
    if uncertainty:
        values = np.zeros(volume.array.shape, np.float32)
        values[..., list(synthesized), :, :] = np.linspace(0.5, 4.0, values[..., 0, :, :].size).reshape(
            values[..., 0, :, :].shape)[..., None, :, :]
        std = volume.replace(array=values)
    report = {"method": "calid", "factor": factor, "synthesized_slices": list(synthesized),
              "acquired_slices": [i for i in range(volume.n_slices) if i not in synthesized]}
    return LoadedOutputs(dense=dense, report=report, uncertainty=std)


def test_synthesised_slices_node_covers_exactly_the_reported_slices_on_an_oblique_grid(scene, oblique_stack):
    outputs = dense_outputs(oblique_stack)
    nodes = add_output_nodes(scene, outputs, "sax")
    found = nodes_named(scene, "sax CaLID x3 synthesised slices")
    assert [node.GetID() for node in found] == [nodes.synthesised]
    node = found[0]
    assert node.IsA("vtkMRMLSegmentationNode")
    array, ijk_to_ras = synthesised_array(node)
    reported = outputs.report["synthesized_slices"]
    assert reported == [1, 2, 4, 5]
    assert array.shape == oblique_stack.array.shape
    for z in range(oblique_stack.n_slices):
        assert (array[z] == (1 if z in reported else 0)).all(), f"slice {z}"
    np.testing.assert_allclose(ijk_to_ras, oblique_stack.affine_ras(), atol=1e-9)
    assert node.GetAttribute(SYNTHESIZED_ATTRIBUTE) == "1,2,4,5"
    assert nodes.synthesised in nodes.created


def test_synthesised_slices_can_be_hidden_and_shown_and_draw_an_outline(scene, oblique_stack):
    nodes = add_output_nodes(scene, dense_outputs(oblique_stack), "sax")
    display = scene.GetNodeByID(nodes.synthesised).GetDisplayNode()
    assert display.GetVisibility() and display.GetVisibility2DOutline()
    assert 0 < display.GetOpacity2DFill() < 0.5  # the image stays readable under the fill
    set_visible(scene, nodes.synthesised, False)
    assert not display.GetVisibility()
    set_visible(scene, nodes.synthesised, True)
    assert display.GetVisibility()


def test_uncertainty_is_a_coloured_overlay_that_hides_zeros(scene, oblique_stack):
    outputs = dense_outputs(oblique_stack)
    nodes = add_output_nodes(scene, outputs, "sax")
    display = scene.GetNodeByID(nodes.uncertainty).GetDisplayNode()
    assert display.GetColorNodeID() == "vtkMRMLPETProceduralColorNodePET-Heat"
    assert not display.GetAutoWindowLevel()
    assert display.GetWindowLevelMin() == pytest.approx(0.0)
    top = np.percentile(outputs.uncertainty.array[outputs.uncertainty.array > 0], 99)
    assert display.GetWindowLevelMax() == pytest.approx(top, rel=1e-6)
    assert display.GetApplyThreshold() and 0 < display.GetLowerThreshold() <= 0.5  # zeros (acquired slices) hidden


def test_no_uncertainty_node_without_an_uncertainty_map(scene, oblique_stack):
    nodes = add_output_nodes(scene, dense_outputs(oblique_stack, uncertainty=False), "sax")
    assert nodes.uncertainty is None
    assert not nodes_named(scene, "sax CaLID x3 uncertainty")
    assert nodes.synthesised is not None


def test_result_and_uncertainty_are_laid_over_each_other_in_every_slice_view(scene, oblique_stack):
    views = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    nodes = add_output_nodes(scene, dense_outputs(oblique_stack), "sax")
    assert show_over(scene, nodes.volume, nodes.uncertainty, 0.4) == 3
    for view in views:
        assert view.GetBackgroundVolumeID() == nodes.volume
        assert view.GetForegroundVolumeID() == nodes.uncertainty
        assert view.GetForegroundOpacity() == pytest.approx(0.4)


def test_cine_gets_one_static_synthesised_slices_node_on_the_frame_grid(scene, oblique_cine, sequences_logic):
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    outputs = dense_outputs(oblique_cine, factor=2)
    nodes = add_output_nodes(scene, outputs, "cine", cine_index=CINE_INDEX, sequences_logic=sequences_logic)
    colors.SetMRMLScene(None)
    array, ijk_to_ras = synthesised_array(scene.GetNodeByID(nodes.synthesised))
    assert array.shape == oblique_cine.array.shape[1:]
    assert [z for z in range(array.shape[0]) if array[z].all()] == [1, 3]
    assert not array[[0, 2, 4]].any()
    np.testing.assert_allclose(ijk_to_ras, oblique_cine.frame(0).affine_ras(), atol=1e-9)


@pytest.mark.parametrize("broken", ["fill_table", "fill_synthesised_segmentation"])
def test_a_failure_while_adding_nodes_leaves_the_scene_unchanged(scene, oblique_stack, monkeypatch, broken):
    import CaLIDSlicerLib.outputs as outputs_module

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(outputs_module, broken, fail)
    before = node_ids(scene)
    with pytest.raises(RuntimeError, match="disk full"):
        add_output_nodes(scene, dense_outputs(oblique_stack), "sax")
    assert node_ids(scene) == before


def test_a_real_engine_run_marks_the_slices_its_report_names(scene, oblique_stack, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sax")
    volume_to_node(oblique_stack, node)
    parameters = CaLIDParameters(input_volume=node.GetID(), method="linear", device="cpu", factor=4)
    result = ReconstructionRun(scene, parameters, calid_available=False).run()
    array, ijk_to_ras = synthesised_array(scene.GetNodeByID(result.nodes.synthesised))
    synthesized = result.report["synthesized_slices"]
    assert len(synthesized) == 15  # 6 slices x4: 21 dense, 6 acquired
    assert [z for z in range(array.shape[0]) if array[z].any()] == synthesized
    assert all(array[z].all() for z in synthesized)
    np.testing.assert_allclose(ijk_to_ras, oblique_stack.replace(**oblique_stack.dense_geometry(4)).affine_ras(),
                               atol=1e-6)


def test_a_failed_engine_run_adds_no_overlay(scene, oblique_stack, tmp_path, monkeypatch):
    import tempfile

    from CaLIDSlicerLib.logic import RunFailed

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sax")
    volume_to_node(oblique_stack, node)
    before = node_ids(scene)
    parameters = CaLIDParameters(input_volume=node.GetID(), method="linear", device="cpu", use_spacing=True,
                                 spacing_mm=3.0)  # 10 mm does not divide into 3 mm steps: the engine refuses
    with pytest.raises(RunFailed):
        ReconstructionRun(scene, parameters, calid_available=False).run()
    assert node_ids(scene) == before
