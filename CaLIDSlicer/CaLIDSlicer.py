"""CaLID — dense cardiac MR from sparse short-axis slices: the 3D Slicer module.

Thin on purpose: the panel binds to one parameter object, and everything that can be
tested without Qt lives in CaLIDSlicerLib (node conversion, the engine child process,
output nodes, dependency install). The model itself never runs in Slicer's process.
"""

import logging
import os
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Minimum, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from CaLIDSlicerLib import dependencies
from CaLIDSlicerLib import models as modelfiles
from CaLIDSlicerLib.logic import ReconstructionRun, RunResult
from CaLIDSlicerLib.nodes import SYNTHESIZED_ATTRIBUTE, describe_input
from CaLIDSlicerLib.parameters import NODE_FIELDS, CaLIDParameters, Device, Method, Mode, Quality
from CaLIDSlicerLib.sampledata import register_samples

#: How often (ms) the panel reads the engine's progress.
POLL_INTERVAL_MS = 200

_DEFAULTS = CaLIDParameters()


class CaLIDSlicer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CaLID")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Cardiac")]
        self.parent.dependencies = ["Sequences"]
        self.parent.contributors = ["CaLID Slicer developers"]
        self.parent.helpText = _(
            "Reconstructs a dense cardiac MR volume from the sparse short-axis slices a clinical scan "
            "acquires (8-10 mm apart), for a 3D stack or a whole cine (2D+T). Acquired slices pass through "
            "unchanged; the synthesised ones are listed in the output's node attribute "
            f"<code>{SYNTHESIZED_ATTRIBUTE}</code> and in the results table. Each synthesised slice starts from "
            "its two neighbours morphed into each other (registration) and is refined by the diffusion model. "
            "Without an installed CaLID model "
            "the best classical interpolation is used, and the results say so. The same engine runs on the "
            "command line: <code>calid reconstruct IN -o OUT --factor 4</code>."
        )
        self.parent.acknowledgementText = _(
            "CaLID implements cardiac latent interpolation diffusion as described by N. Bubeck et al., "
            "\"Latent Interpolation Learning Using Diffusion Models for Cardiac Volume Reconstruction\", 2025. "
            "Models were developed with the ACDC data (O. Bernard et al., \"Deep Learning Techniques for Automatic "
            "MRI Cardiac Multi-structures Segmentation and Diagnosis: Is the Problem Solved?\", IEEE TMI 37(11), "
            "2018) and the Sunnybrook Cardiac Data (P. Radau et al., \"Evaluation Framework for Algorithms "
            "Segmenting Short Axis Cardiac MRI\", MIDAS Journal, 2009)."
        )
        # Sample Data: the project's own phantom cine and stack, shipped inside the extension
        # (no public cardiac cine has a stable URL); registered once Slicer has started.
        slicer.app.connect("startupCompleted()", self._registerSampleData)

    def _registerSampleData(self) -> None:
        try:
            register_samples(os.path.dirname(__file__))
        except Exception as error:  # Sample Data is optional: never stop the module from loading
            logging.warning(f"CaLID: sample data not registered ({error})")


@parameterNodeWrapper
class CaLIDParameterNode:
    """The panel's state, saved with the scene; field names match CaLIDParameters and the .ui."""

    input_volume: vtkMRMLScalarVolumeNode
    mode: Mode = _DEFAULTS.mode
    use_spacing: bool = _DEFAULTS.use_spacing
    factor: Annotated[int, WithinRange(1, 16)] = _DEFAULTS.factor
    spacing_mm: Annotated[float, WithinRange(0.1, 50.0)] = _DEFAULTS.spacing_mm
    method: Method = _DEFAULTS.method
    quality: Quality = _DEFAULTS.quality
    uncertainty: bool = _DEFAULTS.uncertainty
    segmentation: bool = _DEFAULTS.segmentation
    device: Device = _DEFAULTS.device
    seed: Annotated[int, Minimum(0)] = _DEFAULTS.seed
    registration_start: bool = _DEFAULTS.registration_start
    output_volume: vtkMRMLScalarVolumeNode
    output_segmentation: vtkMRMLSegmentationNode


def parametersFromNode(parameterNode: CaLIDParameterNode) -> CaLIDParameters:
    """The plain parameter object (node IDs instead of nodes) that the Lib works with."""
    values = {name: getattr(parameterNode, name) for name in CaLIDParameters.field_names()}
    for name in NODE_FIELDS:
        values[name] = values[name].GetID() if values[name] else ""
    return CaLIDParameters(**values)


class CaLIDSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CaLIDSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CaLIDSlicerLogic()

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._updateInputKind)
        self.ui.modelsCollapsibleButton.connect("contentsCollapsed(bool)", self._onModelsCollapsed)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModelButton)
        self.ui.progressBar.hide()
        qt.QTimer.singleShot(0, self._updateDeviceInfo)  # may import torch: after the panel is shown
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._run is not None:
            self._run.cancel()
            self._run = None
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.input_volume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.input_volume = first

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        ready = self._run is not None or bool(self._parameterNode and self._parameterNode.input_volume)
        self.ui.applyButton.enabled = ready
        self._updateInputKind()

    def _updateInputKind(self, node=None) -> None:
        self.ui.inputKindLabel.text = describe_input(slicer.mrmlScene, self.ui.inputVolumeSelector.currentNode())

    def _updateDeviceInfo(self) -> None:
        self.ui.deviceInfoLabel.text = dependencies.gpu_description()

    def _onModelsCollapsed(self, collapsed: bool) -> None:
        if not collapsed:
            self._updateModelList()

    def _updateModelList(self) -> None:
        """Ask the engine which models it finds (a child process, about a second)."""
        try:
            with slicer.util.WaitCursor():
                rows = self.logic.installedModels()
        except Exception as err:
            self.ui.modelsLabel.text = _(
                "Could not list the models ({error}). Press Apply once to install the engine's packages."
            ).format(error=err)
            return
        self.ui.modelsLabel.text = "\n".join(row.text() for row in rows) or _("No models found.")

    def onImportModelButton(self) -> None:
        chosen = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), _("Import a CaLID model"), "", modelfiles.IMPORT_FILE_FILTER)
        if not chosen:
            return
        try:
            with slicer.util.tryWithErrorDisplay(_("The model was not installed."), waitCursor=True):
                message = self.logic.importModel(chosen, self.ui.modelSha256LineEdit.text)
        except Exception as err:
            self.ui.statusLabel.text = str(err)
            return
        self.ui.statusLabel.text = message
        self.ui.modelSha256LineEdit.text = ""
        self._updateModelList()

    def _setRunning(self, running: bool) -> None:
        self.ui.applyButton.text = _("Cancel") if running else _("Apply")
        self.ui.applyButton.toolTip = _("Stop the engine; nothing is added to the scene") if running else _(
            "Reconstruct the dense volume")
        self.ui.progressBar.visible = running
        self.ui.progressBar.value = 0
        for button in (self.ui.inputsCollapsibleButton, self.ui.settingsCollapsibleButton,
                       self.ui.advancedCollapsibleButton, self.ui.modelsCollapsibleButton,
                       self.ui.outputsCollapsibleButton):
            button.enabled = not running

    def onApplyButton(self) -> None:
        if self._run is not None:
            self._timer.stop()
            run, self._run = self._run, None
            run.cancel()
            self._setRunning(False)
            self.ui.statusLabel.text = _("Cancelled: nothing was added to the scene.")
            return
        try:
            with slicer.util.tryWithErrorDisplay(_("Could not start the reconstruction."), waitCursor=True):
                self.ui.statusLabel.text = _("Checking PyTorch and the engine's packages...")
                slicer.app.processEvents()
                self.logic.ensureDependencies()
                self._run = self.logic.start(parametersFromNode(self._parameterNode))
        except Exception as err:
            self.ui.statusLabel.text = str(err)
            return
        self._setRunning(True)
        self.ui.statusLabel.text = _("Running calid...")
        self._timer.start()

    def _onPoll(self) -> None:
        run = self._run
        if run is None:
            self._timer.stop()
            return
        run.poll()
        state = run.process.state
        self.ui.progressBar.value = state.percent
        self.ui.progressBar.format = f"{state.stage}: %p%" if state.stage else "%p%"
        self.ui.statusLabel.text = state.text()
        if not run.finished:
            return
        self._timer.stop()
        self._run = None
        self._setRunning(False)
        try:
            with slicer.util.tryWithErrorDisplay(_("Reconstruction failed."), waitCursor=True):
                self._showResult(run.finish())
        except Exception as err:
            self.ui.statusLabel.text = str(err)
            logging.error(f"CaLID: {err}")

    def _showResult(self, result: RunResult) -> None:
        nodes = result.nodes
        synthesized = result.report.get("synthesized_slices", [])
        self.ui.statusLabel.text = _(
            "Done in {seconds:.1f} s: {count} synthesised slices (listed in the node attribute {attribute})."
        ).format(seconds=result.seconds, count=len(synthesized), attribute=SYNTHESIZED_ATTRIBUTE)
        self.ui.resultsTableView.setMRMLTableNode(slicer.mrmlScene.GetNodeByID(nodes.table))
        slicer.util.setSliceViewerLayers(background=slicer.mrmlScene.GetNodeByID(nodes.volume), fit=True)


class CaLIDSlicerLogic(ScriptedLoadableModuleLogic):
    """Runs reconstructions on Slicer's scene; batch scripts call :meth:`process`."""

    def getParameterNode(self):
        return CaLIDParameterNode(super().getParameterNode())

    def ensureDependencies(self, ask: bool = True) -> None:
        """PyTorch via the PyTorch extension, then the engine's pip packages (Slicer's own ones pinned)."""
        dependencies.ensure_torch(ask=ask)
        confirm = slicer.util.confirmOkCancelDisplay if ask else None
        installed = dependencies.install_requirements(slicer.util.pip_install, confirm=confirm)
        if installed:
            logging.info(f"CaLID installed: {', '.join(map(str, installed))}")

    def installedModels(self) -> list[modelfiles.ModelRow]:
        """The models the engine finds, and where (bundled, user cache, $CALID_MODEL_DIR)."""
        return modelfiles.list_installed()

    def importModel(self, path: str, sha256: str = "") -> str:
        """Install a model archive or folder copied by hand (offline sites); checked by SHA-256 when given."""
        return modelfiles.import_model_file(path, sha256)

    def newRun(self, parameters: CaLIDParameters) -> ReconstructionRun:
        return ReconstructionRun(slicer.mrmlScene, parameters, sequences_logic=slicer.modules.sequences.logic())

    def start(self, parameters: CaLIDParameters) -> ReconstructionRun:
        """Start in the background; poll the returned run, then call its finish()."""
        run = self.newRun(parameters)
        run.start()
        return run

    def process(self, parameters: CaLIDParameters) -> RunResult:
        """Run to the end (blocking) and return the new nodes."""
        return self.newRun(parameters).run()


class CaLIDSlicerTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer only (the pytest suite covers the Lib without it)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_linear_reconstruction_lies_over_input()
        self.setUp()
        self.test_sample_data_loads_as_a_cine()
        self.test_bundled_models_are_listed()

    def test_bundled_models_are_listed(self):
        self.delayDisplay("Listing the models the engine finds (a PythonSlicer child process)")
        rows = {row.name: row for row in CaLIDSlicerLogic().installedModels()}
        for name in ("calid-vae-acdc", "calid-denoiser-acdc", "calid-denoiser-2dt-acdc", "calid-segmenter-acdc"):
            self.assertIn(name, rows)
            self.assertTrue(rows[name].installed, f"{name} is not found: {rows[name].text()}")
        self.delayDisplay("Test passed")

    def test_sample_data_loads_as_a_cine(self):
        import SampleData

        from CaLIDSlicerLib.sampledata import SAMPLES

        self.delayDisplay("Loading the CaLID phantom cine from Sample Data")
        register_samples(os.path.dirname(__file__))
        cine = SAMPLES[0]
        loaded = SampleData.SampleDataLogic().downloadSamples(cine.name)
        self.assertTrue(loaded, "the phantom cine did not load")
        sequences = [n for n in loaded if hasattr(n, "IsA") and n.IsA("vtkMRMLSequenceNode")]
        self.assertTrue(sequences, f"expected a sequence node, got {loaded}")
        self.assertEqual(sequences[0].GetNumberOfDataNodes(), 12)
        self.delayDisplay("Test passed")

    def test_linear_reconstruction_lies_over_input(self):
        import numpy as np

        from calid.io.volume import Volume
        from CaLIDSlicerLib.nodes import FACTOR_ATTRIBUTE, node_to_volume, volume_to_node

        self.delayDisplay("Reconstructing a small oblique stack x2 with linear interpolation")
        angle = np.deg2rad(30.0)
        direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        array = np.random.default_rng(0).integers(0, 1000, size=(5, 16, 18)).astype(np.int16)
        sparse = Volume(array, spacing=(1.4, 1.5, 10.0), origin=(10.0, -20.0, 30.0), direction=direction)
        inputNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sparse")
        volume_to_node(sparse, inputNode)

        result = CaLIDSlicerLogic().process(
            CaLIDParameters(input_volume=inputNode.GetID(), factor=2, method="linear", device="cpu"))

        denseNode = slicer.mrmlScene.GetNodeByID(result.nodes.volume)
        dense = node_to_volume(denseNode)
        self.assertEqual(dense.n_slices, 9)
        np.testing.assert_allclose(dense.origin, sparse.origin, atol=1e-6)
        np.testing.assert_allclose(dense.direction, sparse.direction, atol=1e-9)
        np.testing.assert_allclose(dense.spacing, (1.4, 1.5, 5.0), atol=1e-9)
        np.testing.assert_array_equal(dense.array[::2], sparse.array)
        self.assertEqual(dense.synthesized, (1, 3, 5, 7))
        self.assertEqual(denseNode.GetAttribute(FACTOR_ATTRIBUTE), "2")
        self.delayDisplay("Test passed")
