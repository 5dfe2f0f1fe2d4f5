"""File paths the engine writes to: the suffix that decides a format, and atomic replacement."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from calid.errors import OutputError
from calid.io.validate import check_output_path


def compound_suffix(path: str | Path) -> str:
    """Lower-case suffix that decides the format (``.nii.gz``, ``.seq.nrrd``, ``.nrrd``...)."""
    name = Path(path).name.lower()
    for suffix in (".seq.nrrd", ".seg.nrrd", ".nii.gz"):
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary file is created by the writer itself, so the result gets the usual
    permissions (umask), and ``os.replace`` makes it appear whole or not at all.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"output {str(path)!r} already exists; remove it or allow overwriting")
    if path.is_dir():
        raise OutputError(f"output {str(path)!r} is a folder; give a file name such as {path / 'result.nii.gz'}")
    check_output_path(None, path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part{compound_suffix(path)}")
    try:
        yield temp
        try:
            os.replace(temp, path)
        except OSError as err:
            raise OutputError(f"cannot move the finished file into {str(path)!r}: {err.strerror}") from err
    finally:
        temp.unlink(missing_ok=True)

