"""Turn what a run wrote into MRML nodes: all of them, or — if anything fails — none.

A 3D result becomes a scalar volume (plus segmentation, uncertainty map and a results
table); a cine becomes sequences played by one new sequence browser. Every output is
named after the input ("<input> CaLID x4 ...") and records the synthesised slices,
method and factor as node attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import vtk

from calid.io.provenance import provenance_rows
from calid.io.volume import Volume

from .nodes import add_sequence_browser, cine_to_sequence, set_calid_attributes, volume_to_node
from .segments import check_label_values, cine_labels_to_sequence, labels_to_segmentation

#: Colour maps for the uncertainty volume, most suitable first (present in a Slicer scene).
UNCERTAINTY_COLOR_IDS = ("vtkMRMLPETProceduralColorNodePET-Heat", "vtkMRMLColorTableNodeRainbow")


@dataclass
class LoadedOutputs:
    """A finished run's results, read back from its files before any node is made."""

    dense: Volume
    report: dict
    uncertainty: Volume | None = None
    labels: Volume | None = None


@dataclass
class OutputNodes:
    """IDs of the nodes a run made or filled (for a cine, ``volume`` is the browser's proxy)."""

    volume: str
    table: str
    segmentation: str | None = None
    uncertainty: str | None = None
    browser: str | None = None
    created: list[str] = field(default_factory=list)


def output_name(input_name: str, factor: int) -> str:
    return f"{input_name} CaLID x{factor}"


def results_rows(report: dict) -> list[tuple[str, str]]:
    """(item, value) rows for the results table, from the run's JSON report."""
    geometry = report.get("geometry", {})
    synthesized = report.get("synthesized_slices", [])
    rows = [
        ("Method", str(report.get("method", ""))),
        ("Factor", str(report.get("factor", ""))),
        ("Slice spacing (mm)", f"{geometry['spacing_mm'][2]:g}" if "spacing_mm" in geometry else ""),
        ("Acquired slices", ", ".join(map(str, report.get("acquired_slices", [])))),
        ("Synthesised slices", f"{len(synthesized)}: " + ", ".join(map(str, synthesized))),
        ("Seed", str(report.get("seed", ""))),
        ("Seconds", str(report.get("seconds", ""))),
    ]
    rows += provenance_rows(report)  # models, sampler, device, calid version, time per stage: as in every report
    rows += [("Note", str(note)) for note in report.get("notes", [])]
    return rows


def measure_rows(labels: Volume) -> list[tuple[str, str]]:
    """Cardiac measures of the dense segmentation (voxel counting): volumes for a 3D stack, EDV/ESV/SV/EF for a cine."""
    from calid.segmentation.measures import SUMMARY_UNITS, measure

    result = measure(labels)
    summary = result.summary()
    if result.n_frames == 1:  # one frame: no ED/ES pair, so only volumes and mass mean anything
        names = {"lv_edv": "LV blood pool volume", "rv_edv": "RV blood pool volume", "lv_mass": "LV mass"}
    else:
        names = {key: key.replace("_", " ").upper().replace("MASS", "mass") for key in SUMMARY_UNITS}
    return [(f"{name} ({SUMMARY_UNITS[key]})", f"{summary[key]:.1f}")
            for key, name in names.items() if summary[key] is not None]


def fill_table(table_node, rows: list[tuple[str, str]]) -> None:
    table = vtk.vtkTable()
    for name in ("Item", "Value"):
        column = vtk.vtkStringArray()
        column.SetName(name)
        table.AddColumn(column)
    for item, value in rows:
        table.InsertNextBlankRow()
        row = table.GetNumberOfRows() - 1
        table.SetValue(row, 0, vtk.vtkVariant(item))
        table.SetValue(row, 1, vtk.vtkVariant(value))
    table_node.SetAndObserveTable(table)


class _NodeMaker:
    """Adds nodes to a scene; :meth:`remove_all` takes back every node added since it was made.

    The snapshot covers nodes Slicer adds on its own too (display, storage and proxy nodes).
    """

    def __init__(self, scene) -> None:
        self.scene = scene
        self.before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}

    def add(self, class_name: str, name: str):
        return self.scene.AddNewNodeByClass(class_name, self.scene.GenerateUniqueName(name))

    def with_display(self, class_name: str, name: str):
        node = self.add(class_name, name)
        node.CreateDefaultDisplayNodes()
        return node

    def new_ids(self) -> list[str]:
        nodes = [self.scene.GetNthNode(i) for i in range(self.scene.GetNumberOfNodes())]
        return [node.GetID() for node in nodes if node.GetID() not in self.before]

    def remove_all(self) -> None:
        for node_id in reversed(self.new_ids()):
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)


def _color_uncertainty(scene, node) -> None:
    display = node.GetDisplayNode()
    for color_id in UNCERTAINTY_COLOR_IDS:
        if display is not None and scene.GetNodeByID(color_id) is not None:
            display.SetAndObserveColorNodeID(color_id)
            return


def _add_3d(maker: _NodeMaker, outputs: LoadedOutputs, base: str, volume_node, segmentation_node) -> OutputNodes:
    """New nodes are made and filled first; chosen existing nodes are filled last."""
    target = volume_node or maker.with_display("vtkMRMLScalarVolumeNode", base)
    nodes = OutputNodes(volume=target.GetID(), table="")
    if outputs.uncertainty is not None:
        uncertainty = maker.with_display("vtkMRMLScalarVolumeNode", f"{base} uncertainty")
        volume_to_node(outputs.uncertainty, uncertainty)
        _color_uncertainty(maker.scene, uncertainty)
        nodes.uncertainty = uncertainty.GetID()
    segments = None
    if outputs.labels is not None:
        segments = segmentation_node or maker.with_display("vtkMRMLSegmentationNode", f"{base} segmentation")
        nodes.segmentation = segments.GetID()
    volume_to_node(outputs.dense, target)
    if segments is not None:
        labels_to_segmentation(outputs.labels, segments)
        segments.SetReferenceImageGeometryParameterFromVolumeNode(target)
    return nodes


def _add_cine(maker: _NodeMaker, outputs: LoadedOutputs, base: str, index: dict, sequences_logic) -> OutputNodes:
    dense = maker.add("vtkMRMLSequenceNode", base)
    cine_to_sequence(outputs.dense, dense, **index)
    sequences = [dense]
    uncertainty = labels = None
    if outputs.uncertainty is not None:
        uncertainty = maker.add("vtkMRMLSequenceNode", f"{base} uncertainty")
        cine_to_sequence(outputs.uncertainty, uncertainty, **index)
        sequences.append(uncertainty)
    if outputs.labels is not None:
        labels = maker.add("vtkMRMLSequenceNode", f"{base} segmentation")
        cine_labels_to_sequence(outputs.labels, labels, **index)
        sequences.append(labels)
    browser = add_sequence_browser(maker.scene, sequences, f"{base} browser", sequences_logic)
    proxies = {sequence.GetID(): browser.GetProxyNode(sequence) for sequence in sequences}
    nodes = OutputNodes(volume=proxies[dense.GetID()].GetID(), table="", browser=browser.GetID())
    if uncertainty is not None:
        _color_uncertainty(maker.scene, proxies[uncertainty.GetID()])
        nodes.uncertainty = proxies[uncertainty.GetID()].GetID()
    if labels is not None:
        nodes.segmentation = proxies[labels.GetID()].GetID()
    return nodes


def add_output_nodes(scene, outputs: LoadedOutputs, input_name: str, *, cine_index: dict | None = None,
                     volume_node=None, segmentation_node=None, sequences_logic=None) -> OutputNodes:
    """Create (or, for a 3D run, fill the chosen) output nodes; on any error the scene is left as it was.

    ``cine_index`` (from :func:`.nodes.index_of` on the input sequence) gives cine outputs
    the input's exact frame index. Chosen existing nodes are filled only after every new
    node was made, so a failure never touches them.
    """
    report = outputs.report
    base = output_name(input_name, report.get("factor", "?"))
    rows = results_rows(report)
    if outputs.labels is not None:  # checked and measured before any node is touched
        check_label_values(outputs.labels)
        rows += measure_rows(outputs.labels)
    maker = _NodeMaker(scene)
    try:
        if outputs.dense.is_cine:
            nodes = _add_cine(maker, outputs, base, cine_index or {}, sequences_logic)
        else:
            nodes = _add_3d(maker, outputs, base, volume_node, segmentation_node)
        table = maker.add("vtkMRMLTableNode", f"{base} results")
        fill_table(table, rows)
        nodes.table = table.GetID()
        for node_id in (nodes.volume, nodes.segmentation, nodes.uncertainty):
            if node_id:
                set_calid_attributes(scene.GetNodeByID(node_id), outputs.dense.synthesized,
                                     report.get("method"), report.get("factor"))
    except Exception:
        maker.remove_all()
        raise
    nodes.created = maker.new_ids()
    return nodes
