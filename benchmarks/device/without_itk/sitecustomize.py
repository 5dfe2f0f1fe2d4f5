"""Refuse SimpleITK, nibabel, pynrrd (``nrrd``) and slicerio, as the lent GPU machine lacks them.

``run.sh --dry-run`` puts this folder first on PYTHONPATH, so every Python it starts imports
this at start-up: the CPU rehearsal then proves the GPU path runs without those packages.
"""

import importlib.abc
import sys

BLOCKED = frozenset({"SimpleITK", "nibabel", "nrrd", "slicerio"})


class RefuseImaging(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (refused: the lent GPU machine has none)", name=name)
        return None


sys.meta_path.insert(0, RefuseImaging())
