"""Several outputs that appear together or not at all.

A run that writes a volume, an uncertainty map, a segmentation and a report must not leave
some of them behind when a later one fails (a full disk, a cancelled run): each is written
to a hidden temporary name beside its target, and only when all are written are they moved
into place, one ``os.replace`` each. If a move fails, the ones already moved are removed too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from calid.errors import OutputError
from calid.io.paths import compound_suffix


class StagedOutputs:
    """Temporary names for final paths; :meth:`commit` moves them all into place."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Path, Path]] = []

    def temp(self, final: str | Path) -> Path:
        """A temporary path beside ``final`` with the same format suffix (so writers pick the same format)."""
        final = Path(final)
        temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.staged{compound_suffix(final)}")
        self._pairs.append((temp, final))
        return temp

    def commit(self) -> None:
        moved: list[Path] = []
        try:
            for temp, final in self._pairs:
                os.replace(temp, final)
                moved.append(final)
        except OSError as err:
            for final in moved:
                final.unlink(missing_ok=True)
            raise OutputError(f"cannot move the finished outputs into place ({err}); none of them was kept") from err

    def discard(self) -> None:
        for temp, _ in self._pairs:
            temp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """``with staged_outputs() as stage: write(x, stage.temp(path))``; all appear at the end, or none."""
    stage = StagedOutputs()
    try:
        yield stage
        stage.commit()
    finally:
        stage.discard()
