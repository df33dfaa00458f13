"""Errors raised by the readers: each names the file and the field (and the frame where relevant)."""

from __future__ import annotations


class DataFormatError(ValueError):
    """Base class: bad input data. `path` and `field` are always set so callers can quarantine."""

    def __init__(self, path: str, field: str, reason: str, frame: int | None = None) -> None:
        self.path = str(path)
        self.field = field
        self.reason = reason
        self.frame = frame
        where = f"{self.path}: frame {frame}: field '{field}'" if frame is not None else f"{self.path}: field '{field}'"
        super().__init__(f"{where}: {reason}")


class LogFormatError(DataFormatError):
    """An OpenScene log pickle that is unreadable, unsafe or inconsistent."""


class UnsafePickleError(LogFormatError):
    """The pickle references a global outside the allow-list; nothing was executed."""


class MapFormatError(DataFormatError):
    """A nuPlan map (versions JSON or GPKG) that is missing a layer / column or holds bad values.

    For maps, `field` is "<layer>.<column>" or "<layer>".
    """
