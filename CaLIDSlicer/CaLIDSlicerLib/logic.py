"""One reconstruction run from the scene's point of view: input node in, new nodes out.

The input node is written to a private temporary folder (via :func:`calid.io.write`),
``calid reconstruct`` runs there as a child process, and only when it succeeded are its
files read back and turned into nodes. A failed or cancelled run adds nothing to the
scene and the temporary folder is always removed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from calid.errors import CalidError, InputError

from .nodes import index_of, input_volume
from .outputs import LoadedOutputs, OutputNodes, add_output_nodes
from .parameters import CaLIDParameters, RunFiles
from .process import EngineProcess


class RunFailed(CalidError):
    """The engine stopped with an error; the message is the engine's own."""


class RunCancelled(CalidError):
    """The user cancelled the run."""


@dataclass
class RunResult:
    nodes: OutputNodes
    report: dict
    seconds: float


def calid_model_available() -> bool:
    from calid.methods.reconstruction import calid_model_available as available

    return available()


class ReconstructionRun:
    """Start, poll until :attr:`finished`, then :meth:`finish` — or :meth:`cancel` at any time.

    ``python`` is the interpreter that runs the engine (PythonSlicer in Slicer);
    ``sequences_logic`` is Slicer's sequences module logic (a private one is used without it).
    """

    def __init__(self, scene, parameters: CaLIDParameters, *, python: str | None = None,
                 sequences_logic=None, calid_available: bool | None = None) -> None:
        self.scene = scene
        self.parameters = parameters
        self.python = python
        self.sequences_logic = sequences_logic
        self.calid_available = calid_model_available() if calid_available is None else calid_available
        self.process: EngineProcess | None = None
        self.temp_dir: Path | None = None
        self.files: RunFiles | None = None
        self._input_node = None
        self._chosen_outputs: dict = {}
        self._cine_index: dict | None = None
        self._started = 0.0

    # -- starting ----------------------------------------------------------------

    def _chosen_output(self, node_id: str, cine: bool, what: str):
        """The existing node the user chose for an output, or None for "create new"."""
        if not node_id:
            return None
        if cine:
            raise InputError(f"a cine always gets a new {what} sequence; set the output {what} to 'Create new'")
        node = self.scene.GetNodeByID(node_id)
        if node is None:
            raise InputError(f"the chosen output {what} ({node_id}) is no longer in the scene; choose another")
        return node

    def start(self) -> None:
        """Write the input and start the engine; raises (with nothing left behind) if that fails."""
        params = self.parameters
        node = self.scene.GetNodeByID(params.input_volume) if params.input_volume else None
        volume, sequence = input_volume(self.scene, node, params.mode.value)
        cine = volume.is_cine
        self._chosen_outputs = {
            "volume_node": self._chosen_output(params.output_volume, cine, "volume"),
            "segmentation_node": self._chosen_output(params.output_segmentation, cine, "segmentation"),
        }
        self._input_node = node
        self._cine_index = index_of(sequence) if sequence is not None else None
        self.temp_dir = Path(tempfile.mkdtemp(prefix="calid-slicer-"))
        try:
            from calid.io.read_write import write

            self.files = RunFiles.in_folder(self.temp_dir, cine=cine, uncertainty=params.uncertainty,
                                            segmentation=params.segmentation)
            arguments = params.cli_arguments(self.files, calid_available=self.calid_available)
            write(volume, self.files.input)
            self.process = EngineProcess(arguments, device=params.device.cli_value, python=self.python)
            self._started = time.perf_counter()
            self.process.start()
        except BaseException:
            self._cleanup()
            raise

    # -- while running -------------------------------------------------------------

    def poll(self) -> list[dict]:
        return self.process.poll() if self.process is not None else []

    @property
    def finished(self) -> bool:
        return self.process is not None and self.process.finished

    def cancel(self) -> None:
        """Stop the engine and remove its files; the scene is not touched."""
        if self.process is not None:
            self.process.cancel()
        self._cleanup()

    # -- finishing -----------------------------------------------------------------

    def finish(self) -> RunResult:
        """Turn the outputs into nodes; raises RunFailed/RunCancelled leaving the scene as it was."""
        try:
            if self.process is None:
                raise RunFailed("the run was never started")
            if self.process.cancelled:
                raise RunCancelled("reconstruction cancelled; nothing was added to the scene")
            if self.process.wait() != 0:
                raise RunFailed(f"reconstruction failed: {self.process.error_text()}")
            outputs = self._load_outputs()
            nodes = add_output_nodes(self.scene, outputs, self._input_node.GetName(), cine_index=self._cine_index,
                                     sequences_logic=self.sequences_logic, **self._chosen_outputs)
            return RunResult(nodes=nodes, report=outputs.report, seconds=time.perf_counter() - self._started)
        finally:
            self._cleanup()

    def _load_outputs(self) -> LoadedOutputs:
        from calid.io.read_write import read, read_segmentation

        files = self.files
        try:
            return LoadedOutputs(
                dense=read(files.output),
                report=json.loads(files.report.read_text(encoding="utf-8")),
                uncertainty=read(files.uncertainty) if files.uncertainty else None,
                labels=read_segmentation(files.segmentation) if files.segmentation else None,
            )
        except (OSError, ValueError) as err:
            raise RunFailed(f"the engine finished but its results could not be read: {err}") from err

    def run(self, on_events: Callable[[list[dict]], None] | None = None, interval: float = 0.05) -> RunResult:
        """Start, wait and finish in one call (batch scripts and tests; the panel polls from a timer)."""
        self.start()
        try:
            while not self.finished:
                time.sleep(interval)
                events = self.poll()
                if events and on_events is not None:
                    on_events(events)
        except BaseException:
            self.cancel()
            raise
        return self.finish()

    def _cleanup(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
