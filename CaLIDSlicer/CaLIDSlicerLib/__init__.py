"""Slicer-side helpers of the CaLID module, free of Qt so they run (and are tested) without the GUI.

- :mod:`.parameters` — the one parameter object the panel binds to; it becomes ``calid reconstruct`` arguments.
- :mod:`.nodes` — MRML volume and sequence nodes <-> :class:`calid.io.volume.Volume`, geometry kept exactly.
- :mod:`.segments` — labelmaps -> segmentation nodes with named, coloured cardiac segments.
- :mod:`.outputs` — turns the files a run wrote into new nodes (all or nothing).
- :mod:`.process` — the engine as a child process with JSON progress, polled without blocking.
- :mod:`.logic` — one reconstruction run: write input, run, read outputs, clean up.
- :mod:`.models` — the models the engine finds, and installing one copied by hand (offline sites).
- :mod:`.dependencies` — PyTorch and pip requirements, installed on first use.
"""
