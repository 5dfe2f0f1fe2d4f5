"""How the list of synthesised slices travels in file metadata (NRRD ``key:=value``, MetaImage fields)."""

from __future__ import annotations

#: Metadata key (NRRD ``key:=value``, MetaImage field) that lists synthesised slices.
SYNTHESIZED_KEY = "calid_synthesized_slices"


def parse_slice_indices(text: str) -> tuple[int, ...]:
    """Slice indices from a metadata value such as ``"1,3,5"``."""
    text = text.strip()
    return tuple(int(item) for item in text.replace(" ", ",").split(",") if item) if text else ()

