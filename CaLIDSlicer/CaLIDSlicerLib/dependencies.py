"""What the engine needs inside Slicer's Python, installed on first use.

PyTorch comes from the PyTorch extension (it picks the right CUDA build); everything
else from ``Resources/requirements.txt`` through pip. numpy, vtk and SimpleITK belong
to Slicer itself: they are refused in the requirements and pinned while pip runs, so an
install can never replace the versions Slicer was built with.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"

#: Never pip-installed by this module: Slicer ships the first three, the PyTorch extension the last.
FORBIDDEN = ("numpy", "vtk", "simpleitk", "torch")

#: PyTorch version the engine needs (as in pyproject.toml).
TORCH_REQUIREMENT = ">=2.1"

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


class DependencyError(RuntimeError):
    """A dependency is missing and could not be installed; the message says how to fix it."""


def normalize(name: str) -> str:
    """PEP 503 name, so 'SimpleITK', 'simple_itk' and 'simple-itk' compare as they should."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    name: str
    specifier: str = ""

    def __str__(self) -> str:
        return f"{self.name}{self.specifier}"


def parse_requirements(text: str) -> list[Requirement]:
    """Requirements from requirements.txt text; refuses pip options and Slicer's own packages."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _NAME.match(line)
        if line.startswith("-") or match is None:
            raise ValueError(f"requirements line {number} must be 'name[>=version]', not {raw.strip()!r}")
        name, _extras, specifier = match.groups()
        if normalize(name) in FORBIDDEN:
            raise ValueError(
                f"requirements line {number}: {name} must not be pip-installed into Slicer "
                "(numpy, vtk and SimpleITK ship with Slicer; torch comes from the PyTorch extension); remove it"
            )
        found.append(Requirement(name, specifier.replace(" ", "")))
    return found


def read_requirements(path: str | Path = REQUIREMENTS_FILE) -> list[Requirement]:
    return parse_requirements(Path(path).read_text(encoding="utf-8"))


def _satisfies(version: str, specifier: str) -> bool:
    if not specifier:
        return True
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # Slicer's Python may have packaging only inside pip
        from pip._vendor.packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier).contains(version, prereleases=True)


def missing_requirements(requirements: list[Requirement],
                         version_of: Callable[[str], str] = importlib.metadata.version) -> list[Requirement]:
    """Those not installed, or installed in a version the specifier does not allow."""
    missing = []
    for requirement in requirements:
        try:
            version = version_of(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if not _satisfies(version, requirement.specifier):
            missing.append(requirement)
    return missing


def pin_constraints(version_of: Callable[[str], str] = importlib.metadata.version) -> list[str]:
    """``name==version`` for each of Slicer's own packages that is installed (pip must keep them)."""
    pins = []
    for name in ("numpy", "vtk", "SimpleITK", "torch"):
        try:
            pins.append(f"{name}=={version_of(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def confirmation_text(missing: list[Requirement]) -> str:
    """What the panel asks before pip runs: which packages, from where, and that Slicer's own stay as they are."""
    names = ", ".join(map(str, missing))
    return (f"CaLID needs these Python packages, which are not installed in Slicer yet: {names}.\n\n"
            "Install them now with pip (from the Python Package Index; Slicer's own numpy, VTK, SimpleITK "
            "and PyTorch are kept as they are)? This is needed once.")


def install_requirements(pip_install: Callable[[list[str]], object],
                         requirements: list[Requirement] | None = None,
                         version_of: Callable[[str], str] = importlib.metadata.version,
                         confirm: Callable[[str], bool] | None = None) -> list[Requirement]:
    """pip-install what is missing (Slicer: ``slicer.util.pip_install``), with Slicer's packages pinned.

    ``confirm`` (Slicer: an OK/Cancel dialog) is asked first; declining installs nothing and raises.
    """
    missing = missing_requirements(read_requirements() if requirements is None else requirements, version_of)
    if not missing:
        return []
    if confirm is not None and not confirm(confirmation_text(missing)):
        raise DependencyError(
            f"CaLID cannot run without {', '.join(r.name for r in missing)}; the install was declined. "
            "Press Apply again to be asked again, or install them from the Python console with "
            "slicer.util.pip_install")
    with tempfile.TemporaryDirectory(prefix="calid-pip-") as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text("\n".join(pin_constraints(version_of)) + "\n", encoding="utf-8")
        pip_install([*(str(r) for r in missing), "--constraint", str(constraints)])
    return missing


def ensure_torch(ask: bool = True, utils=None):
    """PyTorch through the PyTorch extension (``PyTorchUtils``), asking the user first when ``ask``."""
    if utils is None:
        try:
            import PyTorchUtils as utils
        except ImportError as err:
            raise DependencyError("CaLID needs the PyTorch extension: install 'PyTorch' from the "
                                  "Extensions Manager and restart Slicer") from err
    logic = utils.PyTorchUtilsLogic()
    if logic.torchInstalled():
        return logic.torch
    torch = logic.installTorch(askConfirmation=ask, torchVersionRequirement=TORCH_REQUIREMENT)
    if torch is None:
        raise DependencyError("PyTorch was not installed; CaLID needs it. Install it from the "
                              "'PyTorch Utils' module, then try again")
    return torch


def gpu_description() -> str:
    """What the Device choice 'GPU' would use, in words for the panel."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed yet (it is installed on the first run)"
    import torch

    if torch.cuda.is_available():
        return f"GPU found: {torch.cuda.get_device_name(0)}"
    return ("no CUDA GPU found: runs on the CPU (measured on 2 cores: about 8 s for a 10-slice stack x4, "
            "1.5 min for a 12-slice, 20-frame cine x2)")
