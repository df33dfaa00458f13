"""Local files: atomic writes by temp file in the same directory + fsync + os.replace."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO


def write_file_atomic(path: str | Path, data: bytes | BinaryIO) -> int:
    """Write bytes or a binary stream to path; readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so os.replace is a rename within one filesystem (atomic on POSIX).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
            n = f.tell()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
