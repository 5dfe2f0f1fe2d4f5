"""Labels and measures after reconstruction: RV, LV myocardium and LV blood pool, volumes and ejection fractions.

:mod:`.inference` runs the segmentation network (``calid.segment``), :mod:`.measures` turns
labels into clinical measures, :mod:`.labels` names the structures every label map uses.
The names below are the old ``calid.segmentation`` module's, loaded on first use.
"""

from __future__ import annotations

from calid._lazy import lazy_getattr

_LAZY = dict.fromkeys(("DEFAULT_MODEL", "BATCH_SIZE", "WINDOW_OVERLAP", "SegmentationResult", "to_model_grid", "from_model_grid",
                       "normalised_frame", "keep_largest_components", "resolve_device", "load_segmenter", "segment",
                       "segment_array", "FLIPS"), "calid.segmentation.inference")
_LAZY.update(dict.fromkeys(("MEASURE_KEYS", "evaluate_segmenter"), "calid.evaluation.segmenter"))  # moved to evaluation

__getattr__ = lazy_getattr(__name__, _LAZY)
