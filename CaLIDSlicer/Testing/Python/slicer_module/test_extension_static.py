"""What the Slicer build and the Qt panel rely on, checked without Slicer: .ui bindings, CMake lists, metadata."""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from CaLIDSlicerLib.dependencies import FORBIDDEN, normalize, read_requirements
from CaLIDSlicerLib.parameters import NODE_FIELDS, CaLIDParameters

REPO = Path(__file__).resolve().parents[4]
MODULE_DIR = REPO / "CaLIDSlicer"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "CaLIDSlicer.ui"
MODULE_FILE = MODULE_DIR / "CaLIDSlicer.py"

#: Which widget class each kind of parameter binds to (Slicer's parameterNodeWrapper GUI connectors).
WIDGET_FOR_TYPE = {"bool": "QCheckBox", "int": "QSpinBox", "float": "QDoubleSpinBox",
                   "Mode": "QComboBox", "Method": "QComboBox", "Quality": "QComboBox", "Device": "QComboBox"}


def ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI_FILE).getroot().iter("widget")}


def parameter_bindings() -> dict[str, ET.Element]:
    """SlicerParameterName -> widget element."""
    bound = {}
    for widget in ui_widgets().values():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget
    return bound


def cmake_list(name: str) -> list[str]:
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    body = re.search(rf"set\({name}\s+(.*?)\)", text, re.S).group(1)
    return [line.strip().replace("${MODULE_NAME}", "CaLIDSlicer") for line in body.splitlines() if line.strip()]


def cmake_variable(name: str) -> str:
    return re.search(rf'set\({name}\s+"([^"]*)"', (REPO / "CMakeLists.txt").read_text()).group(1)


def s4ext() -> dict[str, str]:
    entries = {}
    for line in (REPO / "CaLID.s4ext").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            entries[key] = value.strip()
    return entries


def test_every_bound_widget_is_a_parameter_and_every_parameter_is_bound():
    assert set(parameter_bindings()) == set(CaLIDParameters.field_names())


def test_bound_widgets_have_the_class_their_parameter_type_needs():
    types = {name: str(t) for name, t in CaLIDParameters.__annotations__.items()}
    for name, widget in parameter_bindings().items():
        expected = "qMRMLNodeComboBox" if name in NODE_FIELDS else WIDGET_FOR_TYPE[types[name]]
        assert widget.get("class") == expected, name


def test_parameter_node_wrapper_declares_exactly_the_parameter_fields():
    tree = ast.parse(MODULE_FILE.read_text())
    wrapper = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CaLIDParameterNode")
    declared = [n.target.id for n in wrapper.body if isinstance(n, ast.AnnAssign)]
    assert declared == list(CaLIDParameters.field_names())


def test_every_ui_attribute_used_by_the_module_exists_in_the_ui_file():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_FILE.read_text()))
    assert used, "the module should use its .ui widgets"
    assert used <= set(ui_widgets()), sorted(used - set(ui_widgets()))


def test_mrml_widgets_receive_the_scene():
    root = ET.parse(UI_FILE).getroot()
    mrml = {w.get("name") for w in root.iter("widget") if w.get("class", "").startswith("qMRML")} - {"CaLIDSlicer"}
    connected = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert mrml and mrml <= connected


def test_cmake_lists_every_module_python_file():
    on_disk = {"CaLIDSlicer.py"} | {
        path.relative_to(MODULE_DIR).as_posix()
        for folder in ("CaLIDSlicerLib", "calid")
        for path in (MODULE_DIR / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    listed = cmake_list("MODULE_PYTHON_SCRIPTS")
    assert sorted(on_disk - set(listed)) == [], "add these to CaLIDSlicer/CMakeLists.txt"
    assert sorted(set(listed) - on_disk) == [], "these are listed but do not exist"
    assert len(listed) == len(set(listed))


def test_cmake_lists_every_resource_file():
    on_disk = {p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    listed = cmake_list("MODULE_PYTHON_RESOURCES")
    assert sorted(on_disk - set(listed)) == [], "add these to CaLIDSlicer/CMakeLists.txt"
    assert sorted(set(listed) - on_disk) == [], "these are listed but do not exist"


def test_project_name_matches_the_extension_description_files():
    project = re.search(r"^project\((\w+)\)", (REPO / "CMakeLists.txt").read_text(), re.M).group(1)
    assert (REPO / f"{project}.s4ext").is_file()
    assert (REPO / f"{project}.json").is_file()
    assert "add_subdirectory(CaLIDSlicer)" in (REPO / "CMakeLists.txt").read_text()


def test_metadata_agrees_across_cmake_s4ext_and_json():
    entry = json.loads((REPO / "CaLID.json").read_text())
    legacy = s4ext()
    assert cmake_variable("EXTENSION_CATEGORY") == legacy["category"] == entry["category"] == "Cardiac"
    assert cmake_variable("EXTENSION_DEPENDS").split() == legacy["depends"].split() == entry["build_dependencies"]
    assert cmake_variable("EXTENSION_HOMEPAGE") == legacy["homepage"]
    assert legacy["scmurl"] == entry["scm_url"] and legacy["scmurl"].startswith(legacy["homepage"])
    assert cmake_variable("EXTENSION_ICONURL") == legacy["iconurl"]
    assert legacy["iconurl"].endswith("CaLIDSlicer/Resources/Icons/CaLIDSlicer.png")
    screenshots = cmake_variable("EXTENSION_SCREENSHOTURLS").split()
    assert screenshots == legacy["screenshoturls"].split() and screenshots
    prefix = legacy["iconurl"].split("CaLIDSlicer/Resources/")[0]
    for url in screenshots:  # each names a file of this repository, on the same branch as the icon
        assert url.startswith(prefix) and (REPO / url[len(prefix):]).is_file(), url
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
    assert set(entry) <= allowed  # the catalog schema has additionalProperties: false


def test_requirements_never_list_slicer_own_packages():
    names = {normalize(r.name) for r in read_requirements()}  # parsing itself refuses them too
    assert names and not names & {"numpy", "vtk", "simpleitk"} and not names & set(FORBIDDEN)
    text = (MODULE_DIR / "Resources" / "requirements.txt").read_text().lower()
    active = [line.split("#")[0].strip() for line in text.splitlines()]
    assert not any(re.match(r"(numpy|vtk|simpleitk)\b", line) for line in active)


def test_icon_is_a_128_pixel_png():
    image = pytest.importorskip("PIL.Image").open(MODULE_DIR / "Resources" / "Icons" / "CaLIDSlicer.png")
    assert image.format == "PNG" and image.size == (128, 128)


def test_license_is_apache_2():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_engine_never_imports_slicer_qt_or_ctk():
    pattern = re.compile(r"^\s*(import|from)\s+(slicer|qt|ctk|vtk)\b", re.M)
    offenders = [p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "calid").rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_module_file_has_the_four_slicer_classes():
    names = {n.name for n in ast.parse(MODULE_FILE.read_text()).body if isinstance(n, ast.ClassDef)}
    assert {"CaLIDSlicer", "CaLIDSlicerWidget", "CaLIDSlicerLogic", "CaLIDSlicerTest"} <= names
