"""Paths that come from data or params stay inside their root; files read from data have a size limit.

Log names, camera `data_path`s, map versions and split folders become parts of paths under a root the
pipeline chose, so each is checked: a name (`safe_name`) is one plain component; a relative path
(`safe_relative`) has only plain parts; a data file (`read_limited`) is a regular file of which at most
limit + 1 bytes are read. Links the operator placed inside a root are followed (the layout is theirs).
"""

from __future__ import annotations

import os
import re
import stat as stat_mod
from pathlib import Path

from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.uri import is_s3, join_uri

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
MAX_NAME_CHARS = 200
_SHOWN_CHARS = 80  # how much of a refused value an error quotes


def shown(value: object) -> str:
    """repr of a value, cut to a length an error message can carry."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"


class UnsafePathError(ValueError):
    """A path part from data or params that would leave its root; `what` names where it came from."""

    def __init__(self, what: str, value: object, reason: str) -> None:
        self.what, self.value, self.reason = what, value, reason
        super().__init__(f"{what}: {shown(value)} {reason}")


class UnreadableFileError(ValueError):
    """A data file that is not a regular file or is larger than its limit; names the file."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri, self.reason = str(uri), reason
        super().__init__(f"{uri}: {reason}")


def safe_name(value: object, what: str) -> str:
    """`value` if it is one plain path component (a log name, a split name, a map version)."""
    if not isinstance(value, str):
        raise UnsafePathError(what, value, f"is not a string ({type(value).__name__})")
    if len(value) > MAX_NAME_CHARS:
        raise UnsafePathError(what, value, f"is longer than {MAX_NAME_CHARS} characters")
    if not _NAME.match(value):
        raise UnsafePathError(
            what, value, "is not a plain file name (letters, digits, '.', '_', '-'; starting with a letter or digit)"
        )
    return value


def safe_relative(value: object, what: str) -> str:
    """`value` if it is a relative '/'-separated path that cannot climb out of the root it is joined to."""
    if not isinstance(value, str):
        raise UnsafePathError(what, value, f"is not a string ({type(value).__name__})")
    if not value:
        raise UnsafePathError(what, value, "is empty")
    if "\x00" in value or "\\" in value:
        raise UnsafePathError(what, value, "holds a NUL or backslash")
    if value.startswith("/") or is_s3(value) or re.match(r"^[A-Za-z]:", value) or value.startswith("~"):
        raise UnsafePathError(what, value, "is absolute; it must be relative to its root")
    for part in value.split("/"):
        if part in ("", ".", ".."):
            name = repr(part) if part else "an empty"
            raise UnsafePathError(what, value, f"has {name} part; it must be a plain path inside its root")
    return value


def join_inside(root: str | Path, relative: str, what: str) -> str:
    """root joined with a checked relative path (local path or s3:// URI)."""
    return join_uri(root, safe_relative(relative, what))


def read_limited(uri: str | Path, max_bytes: int, params: StorageParams | None = None) -> bytes:
    """The bytes of a regular file or S3 object of at most `max_bytes`.

    Reads at most max_bytes + 1 bytes. FileNotFoundError when missing; UnreadableFileError when it is
    not a regular file or is larger than the limit.
    """
    if max_bytes < 0:
        raise ValueError(f"read_limited({uri}): max_bytes must be >= 0, got {max_bytes}")
    if is_s3(uri):
        from drivefine_core.storage.fs import read_bytes

        data = read_bytes(uri, params, max_bytes=max_bytes)
    else:
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
            fd = os.open(uri, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: no such file") from None
        except IsADirectoryError:
            raise UnreadableFileError(str(uri), "is a directory, not a regular file") from None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise UnreadableFileError(str(uri), "is not a regular file (device, FIFO, socket or directory)")
            if st.st_size > max_bytes:
                raise UnreadableFileError(str(uri), f"is {st.st_size} bytes, over the limit of {max_bytes}")
            data = bytearray()  # plain reads (a buffered file reads ahead), short ones included, limit + 1 in all
            while len(data) <= max_bytes and (chunk := os.read(fd, min(1 << 20, max_bytes + 1 - len(data)))):
                data += chunk
        finally:
            os.close(fd)
    if len(data) > max_bytes:
        raise UnreadableFileError(str(uri), f"is over the limit of {max_bytes} bytes")
    return bytes(data)
