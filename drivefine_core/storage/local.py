"""Local files: atomic writes by temp file in the same directory + fsync + os.replace."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from drivefine_core.storage.s3 import ObjectInfo


def _temp_beside(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so os.replace is a rename within one filesystem (atomic on POSIX).
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def write_file_atomic(path: str | Path, data: bytes | BinaryIO) -> int:
    """Write bytes or a binary stream to path; readers see the old file or the whole new one."""
    path = Path(path)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                shutil.copyfileobj(data, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
            n = f.tell()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def list_files(path: str | Path) -> Iterator[ObjectInfo]:
    """Every file under the directory path (recursive, sorted); temp files of writers are skipped."""
    root = Path(path)
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith(".") and name.endswith(".tmp"):
                continue
            p = Path(dirpath) / name
            st = p.stat()
            yield ObjectInfo(str(p), st.st_size, str(st.st_mtime_ns))


def stat_file(path: str | Path) -> ObjectInfo | None:
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return None
    return ObjectInfo(str(path), st.st_size, str(st.st_mtime_ns))
