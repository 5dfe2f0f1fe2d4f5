"""The one parameter object of the CaLID panel and its translation into ``calid reconstruct`` arguments.

The panel's widgets bind to these fields by name (``SlicerParameterName`` in the .ui file);
the Logic turns the object into a command line, so the GUI, a saved scene and a batch
script all describe a run the same way.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path

from calid.errors import InputError
from calid.methods.reconstruction import DEFAULT_SAMPLES, DEFAULT_STEPS

#: Diffusion samples averaged when an uncertainty map is asked for (its standard deviation needs > 1).
UNCERTAINTY_SAMPLES = 4

#: Fields that hold MRML node IDs ("" = none; for outputs, none means "create a new node").
NODE_FIELDS = ("input_volume", "output_volume", "output_segmentation")


class Mode(enum.Enum):
    AUTO = "auto"
    THREE_D = "3d"
    CINE = "2dt"

    def label(self) -> str:
        return {"auto": "Auto", "3d": "3D (frame by frame)", "2dt": "2D+T (whole cine)"}[self.value]


class Quality(enum.Enum):
    FAST = "fast"
    BALANCED = "balanced"
    BEST = "best"

    def label(self) -> str:
        return self.value.capitalize()

    @property
    def steps(self) -> int:
        """Diffusion sampling steps; balanced is the engine's default."""
        return {"fast": max(1, DEFAULT_STEPS // 2), "balanced": DEFAULT_STEPS, "best": 2 * DEFAULT_STEPS}[self.value]

    @property
    def samples(self) -> int:
        """Diffusion samples averaged per missing slice."""
        return {"fast": 1, "balanced": DEFAULT_SAMPLES, "best": UNCERTAINTY_SAMPLES}[self.value]


class Device(enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"

    def label(self) -> str:
        return {"auto": "Auto", "cpu": "CPU", "gpu": "GPU"}[self.value]

    @property
    def cli_value(self) -> str:
        return {"auto": "auto", "cpu": "cpu", "gpu": "cuda"}[self.value]


class Method(enum.Enum):
    """The engine's methods (``calid reconstruct --method``); a test keeps them in step with the CLI."""

    AUTO = "auto"
    CALID = "calid"
    NEAREST = "nearest"
    LINEAR = "linear"
    CUBIC = "cubic"
    REGISTRATION = "registration"

    def label(self) -> str:
        return {"auto": "Auto (CaLID if installed)", "calid": "CaLID"}.get(self.value, self.value.capitalize())


def _as_enum(kind: type[enum.Enum], value, name: str):
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError as err:
        choices = ", ".join(repr(item.value) for item in kind)
        raise InputError(f"{name} must be one of {choices}, not {value!r}") from err


@dataclass
class RunFiles:
    """Where one run's input and outputs live (inside its temporary folder)."""

    input: Path
    output: Path
    report: Path
    uncertainty: Path | None = None
    segmentation: Path | None = None

    @classmethod
    def in_folder(cls, folder: Path, *, cine: bool, uncertainty: bool, segmentation: bool) -> "RunFiles":
        """A cine travels as .seq.nrrd (exact frame times); a 3D stack as .nrrd."""
        suffix = ".seq.nrrd" if cine else ".nrrd"
        folder = Path(folder)
        return cls(
            input=folder / f"input{suffix}",
            output=folder / f"dense{suffix}",
            report=folder / "dense.calid.json",
            uncertainty=folder / f"uncertainty{suffix}" if uncertainty else None,
            # a .seg.nrrd holds one 3D labelmap; a cine of labels goes as a sequence
            segmentation=(folder / ("segmentation.seq.nrrd" if cine else "segmentation.seg.nrrd")) if segmentation else None,
        )


@dataclass
class CaLIDParameters:
    """Everything one reconstruction needs; field names are the panel's ``SlicerParameterName`` values."""

    input_volume: str = ""
    mode: Mode = Mode.AUTO
    use_spacing: bool = False
    factor: int = 2
    spacing_mm: float = 2.5
    method: Method = Method.AUTO
    quality: Quality = Quality.BALANCED
    uncertainty: bool = False
    segmentation: bool = False
    device: Device = Device.AUTO
    seed: int = 0
    registration_start: bool = True  # CaLID's registration-guided start (the engine's default); off: --guide none
    output_volume: str = ""
    output_segmentation: str = ""

    def __post_init__(self) -> None:
        self.mode = _as_enum(Mode, self.mode, "mode")
        self.method = _as_enum(Method, self.method, "method")
        self.quality = _as_enum(Quality, self.quality, "quality")
        self.device = _as_enum(Device, self.device, "device")
        if isinstance(self.factor, bool) or int(self.factor) != self.factor or self.factor < 1:
            raise InputError(f"factor must be a positive whole number (e.g. 2 or 4), not {self.factor!r}")
        self.factor = int(self.factor)
        if not self.spacing_mm > 0:
            raise InputError(f"target spacing must be a positive number of mm, not {self.spacing_mm!r}")
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise InputError(f"seed must be a whole number >= 0, not {self.seed!r}")
        self.seed = int(self.seed)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    def resolved_method(self, calid_available: bool) -> Method:
        """``auto`` picks CaLID when its model is installed; otherwise the engine picks a baseline and says so."""
        method = Method.CALID if self.method is Method.AUTO and calid_available else self.method
        if self.uncertainty and method is not Method.CALID:
            raise InputError(
                "an uncertainty map needs the CaLID method with its trained model installed, not "
                f"{method.value!r}; turn uncertainty off or install the CaLID model"
            )
        return method

    def cli_arguments(self, files: RunFiles, *, calid_available: bool) -> list[str]:
        """Arguments after ``calid`` for one run (paths from ``files``)."""
        method = self.resolved_method(calid_available)
        args = ["reconstruct", str(files.input), "-o", str(files.output), "--report", str(files.report)]
        args += ["--spacing", f"{self.spacing_mm:g}"] if self.use_spacing else ["--factor", str(self.factor)]
        args += ["--method", method.value, "--mode", self.mode.value, "--seed", str(self.seed)]
        # the scene shows the result and its overlays, so no QC figure is drawn for a temp folder
        args += ["--device", self.device.cli_value, "--progress", "json", "--no-qc"]
        if method is Method.CALID:
            samples = max(self.quality.samples, UNCERTAINTY_SAMPLES) if self.uncertainty else self.quality.samples
            args += ["--steps", str(self.quality.steps), "--samples", str(samples)]
            args += ["--guide", "registration" if self.registration_start else "none"]
        if self.uncertainty:
            if files.uncertainty is None:
                raise InputError("uncertainty is on, so the run needs an uncertainty file; use RunFiles.in_folder")
            args += ["--uncertainty", str(files.uncertainty)]
        if self.segmentation:
            if files.segmentation is None:
                raise InputError("segmentation is on, so the run needs a segmentation file; use RunFiles.in_folder")
            args += ["--segment", str(files.segmentation)]
        return args
