"""Exception types the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class CalidError(Exception):
    """Base class for errors the user can fix; the message says how."""


class InputError(CalidError, ValueError):
    """The input data cannot be used as it is (shape, values, geometry)."""


class InputFileError(CalidError, OSError):
    """An input file is missing, unreadable or corrupt."""


class OutputError(CalidError, OSError):
    """An output cannot be written where it was asked for."""


class ModelError(CalidError, RuntimeError):
    """A model file is missing, corrupt, or does not match its checksum."""
