"""The panel's estimate before Apply is the engine's own, and a run reports it before its first stage."""

from __future__ import annotations

import time

import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)",
                allow_module_level=True)

from CaLIDSlicerLib.estimate import estimate_line, estimate_run  # noqa: E402
from CaLIDSlicerLib.logic import ReconstructionRun  # noqa: E402
from CaLIDSlicerLib.nodes import add_sequence_browser, cine_to_sequence, volume_to_node  # noqa: E402
from CaLIDSlicerLib.parameters import CaLIDParameters  # noqa: E402
from CaLIDSlicerLib.process import EngineProcess, ProgressState  # noqa: E402


def add_stack(scene, volume):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sax")
    volume_to_node(volume, node)
    return node


def add_cine(scene, cine, logic):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    cine_to_sequence(cine, sequence)
    browser = add_sequence_browser(scene, [sequence], "cine browser", logic)
    return browser.GetProxyNode(sequence)


def test_panel_estimate_is_the_engines_estimate_for_the_same_run(scene, oblique_stack, tmp_path):
    from calid.io.read_write import write

    node = add_stack(scene, oblique_stack)
    parameters = CaLIDParameters(input_volume=node.GetID(), method="registration", device="cpu", factor=4)
    panel = estimate_run(scene, parameters, calid_available=False)
    source = write(oblique_stack, tmp_path / "input.nrrd")
    engine = EngineProcess(["reconstruct", str(source), "-o", str(tmp_path / "dense.nrrd"), "--factor", "4",
                            "--method", "registration", "--device", "cpu", "--progress", "json", "--estimate-only"],
                           device="cpu")
    engine.start()
    events = []
    while not engine.finished:
        time.sleep(0.05)
        events += engine.poll()
    events += engine.poll()
    assert engine.returncode == 0, engine.stderr_lines
    [event] = [e for e in events if e["event"] == "estimate"]
    # the CPU load each saw may differ (it is measured when asked); the model's own seconds must not
    engine_stages = {k: v / event["busy"] for k, v in event["stages"].items()}
    assert engine_stages == pytest.approx({k: v / panel.busy for k, v in panel.stages.items()}, rel=1e-3, abs=1e-3)
    assert "registration x4, 6 slices of 20 x 24" in event["text"] and "registration x4, 6 slices of 20 x 24" in panel.text()
    assert not (tmp_path / "dense.nrrd").exists()


def test_estimate_line_scales_with_the_cine_frames(scene, oblique_cine, sequences_logic):
    node = add_cine(scene, oblique_cine, sequences_logic)
    parameters = CaLIDParameters(input_volume=node.GetID(), method="calid", mode="3d", device="cpu")
    one = estimate_run(scene, parameters, calid_available=True)
    assert one.work.frames == oblique_cine.n_frames and one.work.slices == oblique_cine.n_slices
    assert one.work.height == oblique_cine.array.shape[2] and one.work.width == oblique_cine.array.shape[3]
    line = estimate_line(scene, parameters, calid_available=True)
    assert line.startswith("Estimate: about ") and "measured on" in line  # the panel does not time the CPU
    assert estimate_line(scene, CaLIDParameters(device="cpu"), calid_available=True).startswith("choose an input")


def test_progress_state_shows_the_estimate_and_one_overall_percentage():
    state = ProgressState()
    state.update({"event": "estimate", "text": "about 2 min on this CPU",
                  "stages": {"encode": 10.0, "sample": 30.0, "start": 5.0}})
    assert "about 2 min" in state.text()
    state.update({"event": "start", "stage": "encode", "total": 2})
    state.update({"event": "step", "stage": "encode", "done": 1, "total": 2})
    assert state.percent == 12  # half of encode: 5 of the 40 estimated seconds of work
    state.update({"event": "end", "stage": "encode"})
    state.update({"event": "start", "stage": "sample", "total": 3})
    assert state.percent == 25
    assert state.text().startswith("sample: 0/3") and "about 2 min" in state.text()


def test_a_run_reports_its_estimate_before_the_first_stage(scene, oblique_stack):
    node = add_stack(scene, oblique_stack)
    run = ReconstructionRun(scene, CaLIDParameters(input_volume=node.GetID(), method="linear", device="cpu"),
                            calid_available=False)
    seen = []
    run.run(on_events=seen.extend)
    kinds = [event["event"] for event in seen]
    assert "estimate" in kinds and kinds.index("estimate") < kinds.index("start")
    assert run.process.state.estimate.startswith("about ")
