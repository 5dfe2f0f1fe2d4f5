"""CaLIDSlicer.py imported with stand-ins for the parts only the Slicer application has (qt, i18n, module bases).

This catches import-time and wiring mistakes in the thin module file; the panel itself
only runs inside Slicer (its ScriptedLoadableModuleTest covers that).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package is not Slicer's MRML core (pip install slicer-core)",
                allow_module_level=True)

from CaLIDSlicerLib.parameters import CaLIDParameters, Device, Mode  # noqa: E402

MODULE_FILE = Path(__file__).resolve().parents[3] / "CaLIDSlicer.py"


def _stand_ins() -> dict[str, types.ModuleType]:
    qt = types.ModuleType("qt")
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.WithinRange = lambda low, high: ("range", low, high)
    wrapper.Minimum = lambda low: ("minimum", low)
    bases = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    bases.ScriptedLoadableModule = ScriptedLoadableModule
    bases.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    bases.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (), {})
    bases.ScriptedLoadableModuleTest = type("ScriptedLoadableModuleTest", (), {})
    return {"qt": qt, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": wrapper,
            "slicer.ScriptedLoadableModule": bases}


class _App:
    """Records the signal connections the module makes on ``slicer.app``."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, object]] = []

    def connect(self, signal: str, slot) -> None:
        self.connections.append((signal, slot))


@pytest.fixture
def module(monkeypatch):
    for name, stand_in in _stand_ins().items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.setattr(slicer, "app", _App(), raising=False)
    spec = importlib.util.spec_from_file_location("CaLIDSlicer_under_test", MODULE_FILE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_module_metadata_names_category_paper_and_data(module):
    parent = types.SimpleNamespace()
    module.CaLIDSlicer(parent)
    assert parent.title == "CaLID" and parent.categories == ["Cardiac"]
    for citation in ("Bubeck", "2025", "Bernard", "IEEE TMI", "2018", "Radau", "MIDAS", "2009"):
        assert citation in parent.acknowledgementText
    assert "CaLID.SynthesizedSlices" in parent.helpText


def test_sample_data_is_registered_once_slicer_has_started(module, monkeypatch):
    calls = []
    fake = types.ModuleType("SampleData")
    fake.SampleDataLogic = types.SimpleNamespace(registerCustomSampleDataSource=lambda **kw: calls.append(kw))
    module.CaLIDSlicer(types.SimpleNamespace())
    [(signal, slot)] = slicer.app.connections
    assert signal == "startupCompleted()" and not calls  # nothing until Slicer has started
    monkeypatch.setitem(sys.modules, "SampleData", fake)
    slot()
    assert [c["sampleName"] for c in calls] == ["CaLIDPhantomCine", "CaLIDPhantomStack"]
    assert all(Path(c["thumbnailFileName"]).is_file() for c in calls)


def test_missing_sample_data_module_does_not_stop_the_module(module, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "SampleData", None)  # import fails
    module.CaLIDSlicer(types.SimpleNamespace())
    [(_, slot)] = slicer.app.connections
    slot()
    assert "sample data not registered" in caplog.text


def test_parameter_node_defaults_are_the_parameter_defaults(module):
    defaults = CaLIDParameters()
    for name in CaLIDParameters.field_names():
        if hasattr(module.CaLIDParameterNode, name):
            assert getattr(module.CaLIDParameterNode, name) == getattr(defaults, name), name


def test_parameter_node_becomes_the_plain_parameter_object(module):
    node = types.SimpleNamespace(GetID=lambda: "vtkMRMLScalarVolumeNode7")
    values = {name: getattr(CaLIDParameters(), name) for name in CaLIDParameters.field_names()}
    values.update(input_volume=node, output_volume=None, output_segmentation=None, mode=Mode.CINE,
                  device=Device.CPU, factor=4)
    params = module.parametersFromNode(types.SimpleNamespace(**values))
    assert params.input_volume == "vtkMRMLScalarVolumeNode7" and params.output_volume == ""
    assert (params.mode, params.device, params.factor) == (Mode.CINE, Device.CPU, 4)


def test_logic_lists_the_bundled_models_through_the_engine(module, monkeypatch, tmp_path):
    """The Logic's model list is the real engine's, run as a child process (what the Models section shows)."""
    monkeypatch.delenv("CALID_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rows = {row.name: row for row in module.CaLIDSlicerLogic().installedModels()}
    assert {rows[name].where for name in ("calid-vae-acdc", "calid-denoiser-acdc", "calid-denoiser-2dt-acdc",
                                          "calid-segmenter-acdc")} == {"bundled"}
