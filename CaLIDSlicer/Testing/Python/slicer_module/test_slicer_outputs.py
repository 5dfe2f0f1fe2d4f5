"""Output nodes from a run's results: segmentation, uncertainty, table — all of them or none."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)",
                allow_module_level=True)

from calid.segmentation.labels import CARDIAC_STRUCTURES  # noqa: E402
from CaLIDSlicerLib.nodes import SYNTHESIZED_ATTRIBUTE, node_to_volume, volume_to_node  # noqa: E402
from CaLIDSlicerLib.outputs import LoadedOutputs, add_output_nodes, results_rows  # noqa: E402


@pytest.fixture
def scene():
    from mrml_scenes import colour_scene

    return colour_scene()


def node_ids(scene) -> list[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def report(factor: int, dense) -> dict:
    return {"method": "calid", "factor": factor, "seed": 0, "seconds": 1.5,
            "acquired_slices": list(dense.acquired), "synthesized_slices": list(dense.synthesized),
            "geometry": {"spacing_mm": list(dense.spacing)}, "notes": ["a note"]}


def results_for(volume, factor: int = 2, labels_value: int = 3) -> LoadedOutputs:
    synthesized = tuple(i for i in range(volume.n_slices) if i % factor)
    dense = volume.replace(synthesized=synthesized)
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[..., 1, 4:8, 4:8] = labels_value
    return LoadedOutputs(
        dense=dense,
        report=report(factor, dense),
        uncertainty=volume.replace(array=np.abs(volume.array).astype(np.float32) / 100),
        labels=volume.replace(array=labels),
    )


def test_3d_outputs_are_named_after_the_input_and_marked(scene, oblique_stack):
    outputs = results_for(oblique_stack)
    nodes = add_output_nodes(scene, outputs, "sax")
    volume = scene.GetNodeByID(nodes.volume)
    segmentation = scene.GetNodeByID(nodes.segmentation)
    uncertainty = scene.GetNodeByID(nodes.uncertainty)
    assert volume.GetName() == "sax CaLID x2"
    assert segmentation.GetName() == "sax CaLID x2 segmentation"
    assert uncertainty.GetName() == "sax CaLID x2 uncertainty"
    assert scene.GetNodeByID(nodes.table).GetName() == "sax CaLID x2 results"
    for node in (volume, segmentation, uncertainty):
        assert node.GetAttribute(SYNTHESIZED_ATTRIBUTE) == "1,3,5"
    assert uncertainty.GetDisplayNode().GetColorNodeID() == "vtkMRMLPETProceduralColorNodePET-Heat"
    names = [segmentation.GetSegmentation().GetNthSegment(i).GetName() for i in range(3)]
    assert names == [item.name for item in CARDIAC_STRUCTURES]
    assert node_to_volume(uncertainty).same_geometry(oblique_stack)
    assert set(nodes.created) == set(node_ids(scene)) - {n for n in node_ids(scene) if "Color" in n}


def table_rows(scene, nodes) -> dict[str, str]:
    table = scene.GetNodeByID(nodes.table).GetTable()
    return {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToString() for r in range(table.GetNumberOfRows())}


def test_results_rows_list_method_slices_and_notes(oblique_stack):
    rows = dict(results_rows(results_for(oblique_stack).report))
    assert rows["Method"] == "calid" and rows["Synthesised slices"] == "3: 1, 3, 5"
    assert rows["Acquired slices"] == "0, 2, 4" and rows["Note"] == "a note"


def test_3d_table_has_volumes_of_the_dense_segmentation(scene, oblique_stack):
    nodes = add_output_nodes(scene, results_for(oblique_stack), "sax")
    rows = table_rows(scene, nodes)
    voxel_ml = np.prod(oblique_stack.spacing) / 1000.0
    assert rows["LV blood pool volume (ml)"] == f"{16 * voxel_ml:.1f}"  # a 4 x 4 square on one slice
    assert rows["RV blood pool volume (ml)"] == "0.0"
    assert "LV EF (%)" not in rows  # one frame has no ejection fraction


def test_cine_table_has_ejection_fraction(scene, oblique_cine, sequences_logic):
    outputs = results_for(oblique_cine)
    outputs.labels.array[0, 1, 2:10, 2:10] = 3  # frame 0 (ED) larger than the others
    index = {"index_values": ["0", "40", "80", "120"], "index_name": "time", "index_unit": "ms"}
    nodes = add_output_nodes(scene, outputs, "cine", cine_index=index, sequences_logic=sequences_logic)
    rows = table_rows(scene, nodes)
    assert rows["LV EF (%)"] == f"{100 * (64 - 16) / 64:.1f}"


def test_chosen_segmentation_is_refilled(scene, oblique_stack):
    chosen = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    chosen.GetSegmentation().AddEmptySegment("old", "old segment")
    nodes = add_output_nodes(scene, results_for(oblique_stack), "sax", segmentation_node=chosen)
    assert nodes.segmentation == chosen.GetID()
    assert chosen.GetSegmentation().GetSegment("old") is None
    assert chosen.GetSegmentation().GetNumberOfSegments() == len(CARDIAC_STRUCTURES)


def test_bad_labels_add_nothing_and_leave_chosen_nodes_alone(scene, oblique_stack):
    chosen = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "mine")
    volume_to_node(oblique_stack.replace(array=np.zeros_like(oblique_stack.array)), chosen)
    before = node_ids(scene)
    with pytest.raises(ValueError, match="label values"):
        add_output_nodes(scene, results_for(oblique_stack, labels_value=9), "sax", volume_node=chosen)
    assert node_ids(scene) == before
    assert not node_to_volume(chosen).array.any()


def test_failure_midway_removes_every_node_made_so_far(scene, oblique_stack, monkeypatch):
    import CaLIDSlicerLib.outputs as outputs_module

    def broken_table(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(outputs_module, "fill_table", broken_table)
    before = node_ids(scene)
    with pytest.raises(RuntimeError, match="disk full"):
        add_output_nodes(scene, results_for(oblique_stack), "sax")
    assert node_ids(scene) == before


def test_cine_outputs_share_one_browser(scene, oblique_cine, sequences_logic):
    index = {"index_values": ["0", "40", "80", "120"], "index_name": "time", "index_unit": "ms"}
    nodes = add_output_nodes(scene, results_for(oblique_cine), "cine", cine_index=index,
                             sequences_logic=sequences_logic)
    browser = scene.GetNodeByID(nodes.browser)
    assert browser.GetNumberOfSynchronizedSequenceNodes() == 2  # uncertainty and segmentation follow the volume
    assert scene.GetNodeByID(nodes.segmentation).IsA("vtkMRMLSegmentationNode")
    segmentation_sequence = browser.GetSequenceNode(scene.GetNodeByID(nodes.segmentation))
    assert segmentation_sequence.GetNumberOfDataNodes() == oblique_cine.n_frames
    assert segmentation_sequence.GetNthIndexValue(3) == "120"
    assert scene.GetNodeByID(nodes.volume).GetAttribute(SYNTHESIZED_ATTRIBUTE) == "1,3"
