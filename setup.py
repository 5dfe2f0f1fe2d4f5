"""Packs the bundled models into the wheel, so ``pip install .`` is as complete as a clone.

The models live once, in ``CaLIDSlicer/Resources/Models`` (where the Slicer extension and a
clone find them); a (non-editable) build copies that folder to ``calid/models/bundled`` in the
wheel, where :mod:`calid.models.search` looks when the source folder is absent. Everything
else about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "CaLIDSlicer" / "Resources" / "Models"
#: The folder inside the built package; must match calid.models.search.PACKAGED_DIR.
PACKAGED = Path("calid") / "models" / "bundled"


class BuildWithModels(build_py):
    """build_py, plus a copy of the bundled models (an editable install reads them in place)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not (MODELS / "models.json").is_file():
            raise SystemExit(f"{MODELS / 'models.json'} is missing: build the wheel from a full clone "
                             "(or an sdist made from one) so that it carries the bundled models")
        shutil.copytree(MODELS, Path(self.build_lib) / PACKAGED, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".*", "__pycache__"))


setup(cmdclass={"build_py": BuildWithModels})
