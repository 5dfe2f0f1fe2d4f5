"""``python -m calid`` (used by the Slicer module as ``PythonSlicer -m calid``)."""

from calid.cli import main

raise SystemExit(main())
