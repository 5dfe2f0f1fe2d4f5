"""The Slicer results table of a real CaLID run (child process, real MRML table) shows models, device and stage times."""

from __future__ import annotations

import hashlib
import tempfile

import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)",
                allow_module_level=True)

import calid  # noqa: E402
from CaLIDSlicerLib.logic import ReconstructionRun  # noqa: E402
from CaLIDSlicerLib.nodes import volume_to_node  # noqa: E402
from CaLIDSlicerLib.parameters import CaLIDParameters  # noqa: E402


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


def table_rows(scene, table_id: str) -> dict[str, str]:
    table = scene.GetNodeByID(table_id).GetTable()
    return {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToString() for r in range(table.GetNumberOfRows())}


def run_on_phantom(scene, method: str, segmentation: bool) -> dict[str, str]:
    from calid.phantom.generator import make_phantom

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sax")
    volume_to_node(make_phantom(n_slices=4, n_frames=1, size=(48, 48), as_3d=True).image, node)
    parameters = CaLIDParameters(input_volume=node.GetID(), method=method, device="cpu", segmentation=segmentation)
    result = ReconstructionRun(scene, parameters, calid_available=method == "calid").run()
    return table_rows(scene, result.nodes.table)


def test_calid_table_names_models_device_and_stage_times(scene):
    from calid.models.search import find_model
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    rows = run_on_phantom(scene, "calid", segmentation=True)
    for kind, name in (("denoiser", rec.DEFAULT_MODEL), ("vae", "calid-vae-acdc"), ("segmenter", "calid-segmenter-acdc")):
        digest = hashlib.sha256((find_model(name) / "model.safetensors").read_bytes()).hexdigest()
        assert rows[f"Model ({kind})"].startswith(f"{name} ") and rows[f"Model ({kind})"].endswith(f"SHA-256 {digest}")
    assert rows["calid version"] == calid.__version__
    assert rows["Device"].startswith("cpu (") and ", torch " in rows["Device"]
    assert f"steps {rec.DEFAULT_STEPS}" in rows["Sampler"]
    for stage in ("read", "load", "encode", "register", "sample", "decode", "segment", "write"):
        assert float(rows[f"Time: {stage} (s)"]) >= 0


def test_baseline_table_lists_no_models(scene):
    rows = run_on_phantom(scene, "linear", segmentation=False)
    assert rows["Models"] == "none (classical method)" and "Sampler" not in rows
    assert not any(item.startswith("Model (") for item in rows)
    assert "Time: interpolate (linear) (s)" in rows and "Time: segment (s)" not in rows
