"""First-use installs: requirements parsing, Slicer's own packages refused and pinned, PyTorch via its extension."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from CaLIDSlicerLib import dependencies
from CaLIDSlicerLib.dependencies import (
    REQUIREMENTS_FILE,
    DependencyError,
    Requirement,
    ensure_torch,
    install_requirements,
    missing_requirements,
    normalize,
    parse_requirements,
    pin_constraints,
    read_requirements,
)

REPO_ROOT = Path(__file__).resolve().parents[4]


def versions(**installed):
    def version_of(name: str) -> str:
        try:
            return installed[normalize(name).replace("-", "_")]
        except KeyError:
            raise importlib.metadata.PackageNotFoundError(name) from None

    return version_of


def test_requirements_lines_with_comments_and_extras():
    text = "# comment\nmonai[nibabel] >= 1.3  # trailing\n\nslicerio\n"
    assert parse_requirements(text) == [Requirement("monai", ">=1.3"), Requirement("slicerio", "")]


@pytest.mark.parametrize("name", ["numpy", "NumPy>=1.20", "vtk", "SimpleITK==2.3", "simpleitk", "torch>=2"])
def test_slicer_own_packages_are_refused(name):
    with pytest.raises(ValueError, match="must not be pip-installed into Slicer"):
        parse_requirements(f"tqdm\n{name}\n")


@pytest.mark.parametrize("line", ["-r other.txt", "--index-url https://example.org", "./local/folder"])
def test_pip_options_and_paths_are_refused(line):
    with pytest.raises(ValueError, match="must be 'name\\[>=version\\]'"):
        parse_requirements(line)


def test_shipped_requirements_are_the_engine_dependencies_minus_slicer_own():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = {normalize(re.match(r"[A-Za-z0-9._-]+", dep).group()) for dep in project["dependencies"]}
    engine = names - set(dependencies.FORBIDDEN)
    shipped = {normalize(r.name) for r in read_requirements()}
    assert shipped == engine
    assert REQUIREMENTS_FILE.parent.name == "Resources"


def test_missing_means_absent_or_too_old():
    requirements = parse_requirements("monai>=1.3\npynrrd>=1.0\ntqdm\n")
    missing = missing_requirements(requirements, versions(monai="1.2.0", tqdm="4.66"))
    assert [r.name for r in missing] == ["monai", "pynrrd"]


def test_install_pins_slicer_packages_and_installs_only_what_is_missing():
    calls = []

    def pip_install(args):
        constraint_file = Path(args[args.index("--constraint") + 1])
        calls.append((args, constraint_file.read_text()))

    version_of = versions(numpy="1.26.4", simpleitk="2.3.1", vtk="9.4.2", monai="1.4.0")
    installed = install_requirements(pip_install, parse_requirements("monai>=1.3\nslicerio>=1.0\n"), version_of)
    assert [r.name for r in installed] == ["slicerio"]
    (args, constraints), = calls
    assert args[0] == "slicerio>=1.0" and "monai>=1.3" not in args
    assert constraints.split() == ["numpy==1.26.4", "vtk==9.4.2", "SimpleITK==2.3.1"]


def test_nothing_to_install_calls_no_pip():
    def pip_install(args):
        raise AssertionError("pip must not run")

    assert install_requirements(pip_install, parse_requirements("tqdm\n"), versions(tqdm="4.66")) == []


def test_the_user_is_asked_before_pip_runs_and_a_no_installs_nothing():
    asked, calls = [], []
    requirements = parse_requirements("monai>=1.3\nslicerio>=1.0\n")
    version_of = versions(monai="1.4.0")

    def decline(text: str) -> bool:
        asked.append(text)
        return False

    with pytest.raises(DependencyError, match="without slicerio; the install was declined"):
        install_requirements(calls.append, requirements, version_of, confirm=decline)
    assert calls == []
    assert "slicerio>=1.0" in asked[0] and "monai" not in asked[0] and "kept as they are" in asked[0]
    installed = install_requirements(calls.append, requirements, version_of, confirm=lambda text: True)
    assert [r.name for r in installed] == ["slicerio"] and len(calls) == 1


def test_nothing_missing_asks_nothing():
    def never(text: str) -> bool:
        raise AssertionError("nothing to install: no dialog")

    assert install_requirements(lambda args: None, parse_requirements("tqdm\n"), versions(tqdm="4.66"),
                                confirm=never) == []


def test_pins_use_the_real_installed_versions():
    pins = dict(line.split("==") for line in pin_constraints())
    assert pins["numpy"] == importlib.metadata.version("numpy")


class FakeTorchUtils:
    """Stands in for the PyTorch extension's module (it only exists inside Slicer)."""

    def __init__(self, installed: bool, installs: bool):
        self.installed, self.installs, self.asked = installed, installs, []
        utils = self

        class PyTorchUtilsLogic:
            torch = "torch module"

            def torchInstalled(self):
                return utils.installed

            def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None):
                utils.asked.append((askConfirmation, torchVersionRequirement))
                return "new torch" if utils.installs else None

        self.PyTorchUtilsLogic = PyTorchUtilsLogic


def test_torch_comes_from_the_pytorch_extension():
    assert ensure_torch(utils=FakeTorchUtils(installed=True, installs=False)) == "torch module"
    fake = FakeTorchUtils(installed=False, installs=True)
    assert ensure_torch(ask=True, utils=fake) == "new torch"
    assert fake.asked == [(True, dependencies.TORCH_REQUIREMENT)]


def test_declined_torch_install_is_a_clear_error():
    with pytest.raises(DependencyError, match="PyTorch was not installed"):
        ensure_torch(utils=FakeTorchUtils(installed=False, installs=False))


def test_missing_pytorch_extension_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # import fails as outside Slicer
    with pytest.raises(DependencyError, match="install 'PyTorch' from the Extensions Manager"):
        ensure_torch()


def test_gpu_description_is_one_line_of_text():
    text = dependencies.gpu_description()
    assert text and "\n" not in text
