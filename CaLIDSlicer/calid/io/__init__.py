"""Reading, checking and writing volumes: the first and last steps of every run.

:mod:`.volume` is the in-memory type; :mod:`.read_write` reads and writes files by suffix,
with :mod:`.dicom` and :mod:`.slicer_files` for DICOM series and Slicer's own kinds;
:mod:`.validate` refuses inputs and outputs that cannot work before long work starts;
:mod:`.report`, :mod:`.preview` and :mod:`.cohort` write what a run leaves beside its output.
The names below are the old ``calid.io`` module's, loaded on first use.
"""

from __future__ import annotations

from calid._lazy import lazy_getattr

_LAZY = {
    **dict.fromkeys(("read", "write", "read_segmentation", "write_segmentation", "volume_from_sitk", "volume_to_sitk",
                     "READ_FORMATS", "WRITE_FORMATS"), "calid.io.read_write"),
    **dict.fromkeys(("atomic_path", "compound_suffix"), "calid.io.paths"),
    **dict.fromkeys(("SYNTHESIZED_KEY", "parse_slice_indices"), "calid.io.synthesized"),
    "Volume": "calid.io.volume",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
