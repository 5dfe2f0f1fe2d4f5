"""The package-level API stays callable however the submodules were imported."""

from __future__ import annotations

import importlib
import warnings

import calid


def test_public_functions_stay_functions_after_submodule_imports():
    importlib.import_module("calid.methods.reconstruction")
    importlib.import_module("calid.segmentation.inference")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module("calid.reconstruction")  # the old paths, kept for one release
    importlib.import_module("calid.segmentation")
    for _ in range(2):
        assert callable(calid.reconstruct) and calid.reconstruct.__name__ == "reconstruct"
        assert callable(calid.segment) and calid.segment.__name__ == "segment"
        assert callable(calid.read) and callable(calid.write)


def test_unknown_attribute_is_an_attribute_error():
    try:
        calid.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")
