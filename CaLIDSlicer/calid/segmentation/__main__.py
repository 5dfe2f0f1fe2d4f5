"""``python -m calid.segmentation`` moved to ``python -m calid.evaluation.segmenter``; kept for one release."""

import warnings

from calid.evaluation.segmenter import _main

warnings.warn("python -m calid.segmentation moved to python -m calid.evaluation.segmenter", DeprecationWarning, stacklevel=1)
raise SystemExit(_main())
