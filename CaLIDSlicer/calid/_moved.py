"""Old module paths from before the engine was split into subpackages, kept importable for one release.

``import calid.reconstruction`` (or ``calid.weights``, ``calid.io_slicer``, ...) still works: a finder
placed after the normal ones answers for the old names in :data:`MOVED`, warns once
(DeprecationWarning) and hands back the new module itself, so attribute reads and monkeypatches
through the old path reach the code. An old module whose code now lives in several modules gets a
module that re-exports all of them. No files stay at the old paths (git then sees each move as a
rename). CHANGELOG.md lists the same table; engine code never imports an old path
(``Testing/Python/test_architecture.py`` checks that).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

#: old module -> the module(s) its code lives in now (several: the old name re-exports them all).
MOVED: dict[str, tuple[str, ...]] = {
    "calid.volume": ("calid.io.volume",),
    "calid.io_dicom": ("calid.io.dicom",),
    "calid.io_slicer": ("calid.io.slicer_files",),
    "calid.validate": ("calid.io.validate",),
    "calid.report": ("calid.io.report",),
    "calid.preview": ("calid.io.preview",),
    "calid.cohort": ("calid.io.cohort",),
    "calid.reconstruction": ("calid.methods.reconstruction",),
    "calid.baselines": ("calid.methods.baselines",),
    "calid.registration": ("calid.methods.registration",),
    "calid.calid_fill": ("calid.methods.calid_fill", "calid.methods.calid_settings", "calid.methods.calid_codec"),
    "calid.sampling": ("calid.methods.sampling", "calid.methods.sampler_settings"),
    "calid.pixel_diffusion": ("calid.methods.pixel_diffusion",),
    "calid.preprocess": ("calid.models.preprocess",),
    "calid.weights": ("calid.models.format", "calid.models.search", "calid.models.registry", "calid.models.fetch"),
    "calid.datasets": ("calid.evaluation.datasets",),
    "calid.splits": ("calid.evaluation.splits",),
    "calid.metrics": ("calid.evaluation.metrics",),
    "calid.evaluate": ("calid.evaluation.evaluate",),
    "calid.evaluate_report": ("calid.evaluation.report",),
    "calid.bench": ("calid.evaluation.bench",),
    "calid.measures": ("calid.segmentation.measures",),
    "calid.labels": ("calid.segmentation.labels",),
    "calid.phantom_anatomy": ("calid.phantom.anatomy",),
}


def _importer_stacklevel() -> int:
    """Stack level of the first frame outside this module and importlib: the code that imported the old path."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen importlib")
                                 or frame.f_globals.get("__name__") == __name__):
        frame, level = frame.f_back, level + 1
    return level


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names only; every real module is found first by the normal finders."""

    def find_spec(self, fullname: str, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {' and '.join(new)}; import it from there (the old path goes away in the next release)",
                      DeprecationWarning, stacklevel=_importer_stacklevel())
        modules = [importlib.import_module(name) for name in new]
        if len(modules) == 1:
            return modules[0]
        merged = ModuleType(spec.name, f"Re-exports {', '.join(new)} (moved from {spec.name}).")
        for module in reversed(modules):  # the first named module wins a name clash
            merged.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        return merged

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was made whole by :meth:`create_module`."""


def install() -> None:
    """Answer for the old names after every normal finder (idempotent)."""
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(_OldPaths())
