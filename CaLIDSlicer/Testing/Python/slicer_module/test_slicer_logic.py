"""A whole reconstruction run on a real MRML scene through the real ``calid`` child process (linear, CPU)."""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)",
                allow_module_level=True)

from calid.errors import InputError  # noqa: E402
from CaLIDSlicerLib.logic import ReconstructionRun, RunCancelled, RunFailed  # noqa: E402
from CaLIDSlicerLib.nodes import (  # noqa: E402
    FACTOR_ATTRIBUTE,
    METHOD_ATTRIBUTE,
    SYNTHESIZED_ATTRIBUTE,
    add_sequence_browser,
    cine_to_sequence,
    node_to_volume,
    sequence_to_cine,
    volume_to_node,
)
from CaLIDSlicerLib.parameters import CaLIDParameters  # noqa: E402


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    """Every temporary folder of a run lands here, so a test can see that none is left."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def stack_node(scene, oblique_stack):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sax")
    volume_to_node(oblique_stack, node)
    return node


def node_ids(scene) -> list[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def linear(node, **changes) -> CaLIDParameters:
    return CaLIDParameters(input_volume=node.GetID(), method="linear", device="cpu", **changes)


def test_dense_volume_lies_exactly_over_the_input(scene, stack_node, oblique_stack, private_tempdir):
    run = ReconstructionRun(scene, linear(stack_node, factor=4), calid_available=False)
    result = run.run()
    dense_node = scene.GetNodeByID(result.nodes.volume)
    dense = node_to_volume(dense_node)
    assert dense_node.GetName() == "sax CaLID x4"
    assert dense.n_slices == (oblique_stack.n_slices - 1) * 4 + 1
    np.testing.assert_allclose(dense.slice_positions()[0], oblique_stack.slice_positions()[0], atol=1e-6)
    np.testing.assert_allclose(dense.direction, oblique_stack.direction, atol=1e-9)
    np.testing.assert_allclose(dense.spacing, np.divide(oblique_stack.spacing, (1, 1, 4)), atol=1e-9)
    np.testing.assert_allclose(dense.slice_positions()[::4], oblique_stack.slice_positions(), atol=1e-6)
    np.testing.assert_array_equal(dense.array[::4], oblique_stack.array)
    synthesized = [i for i in range(dense.n_slices) if i % 4]
    assert dense_node.GetAttribute(SYNTHESIZED_ATTRIBUTE) == ",".join(map(str, synthesized))
    assert dense_node.GetAttribute(METHOD_ATTRIBUTE) == "linear"
    assert dense_node.GetAttribute(FACTOR_ATTRIBUTE) == "4"
    assert result.report["synthesized_slices"] == synthesized
    table = scene.GetNodeByID(result.nodes.table).GetTable()
    rows = {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToString() for r in range(table.GetNumberOfRows())}
    assert rows["Method"] == "linear" and rows["Factor"] == "4" and rows["Slice spacing (mm)"] == "2.5"
    assert not run.temp_dir.exists() and not any(private_tempdir.iterdir())


def test_progress_events_reach_the_caller(scene, stack_node):
    seen = []
    ReconstructionRun(scene, linear(stack_node, factor=2), calid_available=False).run(on_events=seen.extend)
    assert [e["event"] for e in seen if e["event"] in ("start", "end", "done")] == ["start", "end", "done"]


def test_cine_becomes_a_new_sequence_with_the_same_frame_index(scene, oblique_cine, sequences_logic):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    cine_to_sequence(oblique_cine, sequence)
    proxy = add_sequence_browser(scene, [sequence], "cine browser", sequences_logic).GetProxyNode(sequence)
    params = linear(proxy, use_spacing=True, spacing_mm=4.0)
    result = ReconstructionRun(scene, params, sequences_logic=sequences_logic, calid_available=False).run()
    browser = scene.GetNodeByID(result.nodes.browser)
    dense_sequence = browser.GetMasterSequenceNode()
    dense = sequence_to_cine(dense_sequence)
    assert dense.frame_times == oblique_cine.frame_times
    assert [dense_sequence.GetNthIndexValue(i) for i in range(4)] == [sequence.GetNthIndexValue(i) for i in range(4)]
    np.testing.assert_array_equal(dense.array[:, ::2], oblique_cine.array)
    assert dense.spacing[2] == pytest.approx(4.0)
    proxy_out = scene.GetNodeByID(result.nodes.volume)
    assert browser.GetProxyNode(dense_sequence) is proxy_out
    assert proxy_out.GetAttribute(SYNTHESIZED_ATTRIBUTE) == "1,3,5,7"


def test_chosen_output_volume_is_filled_instead_of_a_new_one(scene, stack_node, oblique_stack):
    target = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "my output")
    params = linear(stack_node, factor=2, output_volume=target.GetID())
    result = ReconstructionRun(scene, params, calid_available=False).run()
    assert result.nodes.volume == target.GetID() and target.GetName() == "my output"
    assert node_to_volume(target).n_slices == 2 * oblique_stack.n_slices - 1


def test_engine_error_leaves_the_scene_unchanged(scene, stack_node, private_tempdir):
    before = node_ids(scene)
    run = ReconstructionRun(scene, linear(stack_node, use_spacing=True, spacing_mm=3.0), calid_available=False)
    with pytest.raises(RunFailed, match="does not divide the slice spacing"):
        run.run()
    assert node_ids(scene) == before
    assert not any(private_tempdir.iterdir())


def test_child_exiting_non_zero_leaves_the_scene_unchanged(scene, stack_node, private_tempdir):
    before = node_ids(scene)
    run = ReconstructionRun(scene, linear(stack_node), python="/bin/false", calid_available=False)
    with pytest.raises(RunFailed, match="exited with code 1"):
        run.run()
    assert node_ids(scene) == before
    assert not any(private_tempdir.iterdir())


def test_cancel_leaves_the_scene_unchanged(scene, stack_node, private_tempdir, tmp_path):
    slow = tmp_path / "slow_python"
    slow.write_text(f"#!{sys.executable}\nimport time\nprint('started', flush=True)\ntime.sleep(60)\n")
    slow.chmod(0o755)
    before = node_ids(scene)
    run = ReconstructionRun(scene, linear(stack_node), python=str(slow), calid_available=False)
    run.start()
    assert any(private_tempdir.iterdir())  # the input was written
    deadline = time.monotonic() + 20
    while not run.poll() and time.monotonic() < deadline:
        time.sleep(0.02)
    run.cancel()
    with pytest.raises(RunCancelled):
        run.finish()
    assert node_ids(scene) == before
    assert not any(private_tempdir.iterdir())


def test_missing_input_and_cine_with_chosen_output_are_refused_before_starting(scene, oblique_cine, sequences_logic,
                                                                                 private_tempdir):
    with pytest.raises(InputError, match="choose an input volume"):
        ReconstructionRun(scene, CaLIDParameters(), calid_available=False).start()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    cine_to_sequence(oblique_cine, sequence)
    proxy = add_sequence_browser(scene, [sequence], "cine browser", sequences_logic).GetProxyNode(sequence)
    target = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    with pytest.raises(InputError, match="a cine always gets a new volume sequence"):
        ReconstructionRun(scene, linear(proxy, output_volume=target.GetID()), calid_available=False).start()
    assert not any(private_tempdir.iterdir())
