"""One API over local paths and s3:// URIs. Every write is atomic; every S3 call retries transient errors."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Iterator

from drivefine_core.storage import local, s3
from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.s3 import ObjectInfo
from drivefine_core.storage.uri import is_s3


def read_bytes(uri: str | Path, params: StorageParams | None = None) -> bytes:
    if is_s3(uri):
        return s3.read_object(str(uri), params)
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: no such file") from None


def write_bytes_atomic(uri: str | Path, data: bytes | BinaryIO, params: StorageParams | None = None) -> int:
    """Write all of data to uri or nothing; returns the bytes written."""
    if is_s3(uri):
        return s3.write_object_atomic(str(uri), data, params)
    return local.write_file_atomic(uri, data)


def list_prefix(uri: str | Path, params: StorageParams | None = None) -> list[ObjectInfo]:
    """Every file / object under the directory uri, recursive, sorted by uri."""
    if is_s3(uri):
        return list(s3.list_objects(str(uri), params))
    return list(local.list_files(uri))


def stat(uri: str | Path, params: StorageParams | None = None) -> ObjectInfo | None:
    """Size and change tag of one file / object; None when it does not exist."""
    if is_s3(uri):
        return s3.head_object(str(uri), params)
    return local.stat_file(uri)


def exists(uri: str | Path, params: StorageParams | None = None) -> bool:
    return stat(uri, params) is not None


def delete(uri: str | Path, params: StorageParams | None = None) -> None:
    """Remove one file / object; a missing one is not an error."""
    if is_s3(uri):
        s3.delete_object(str(uri), params)
    else:
        Path(uri).unlink(missing_ok=True)


def download(uri: str, dest: str | Path, params: StorageParams | None = None) -> Path:
    """Copy uri (s3:// or local) to the local path dest, atomically."""
    dest = Path(dest)
    if not is_s3(uri):
        with open(uri, "rb") as src:
            local.write_file_atomic(dest, src)
        return dest
    with tempfile.TemporaryFile(dir=dest.parent if dest.parent.exists() else None) as tmp:
        s3.download_object(uri, tmp, params)  # type: ignore[arg-type]
        tmp.seek(0)
        local.write_file_atomic(dest, tmp)  # type: ignore[arg-type]
    return dest


def upload(src: str | Path, uri: str | Path, params: StorageParams | None = None) -> int:
    """Copy the local file src to uri (s3:// or local), atomically; returns the bytes written."""
    with open(src, "rb") as f:
        return write_bytes_atomic(uri, f, params)


class AtomicWriter(io.RawIOBase):
    """A writable binary file that appears at its URI only when closed without an error.

    Data is spooled to a local temp file (memory first), then written atomically on close().
    Leaving a `with` block by an exception discards everything.
    """

    def __init__(self, uri: str | Path, params: StorageParams | None = None) -> None:
        super().__init__()
        self._uri = uri
        self._params = params
        self._buf = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        self._discarded = False

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        return self._buf.write(b)

    def __del__(self) -> None:
        # An unclosed writer that is garbage-collected must not publish half its data (IOBase would
        # close(), i.e. commit).
        if not self.closed:
            self._discarded = True
            self.close()

    def discard(self) -> None:
        self._discarded = True
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._discarded:
                self._buf.seek(0)
                write_bytes_atomic(self._uri, self._buf, self._params)  # type: ignore[arg-type]
        finally:
            self._buf.close()
            super().close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._discarded = True
        self.close()


def open_uri(uri: str | Path, mode: str = "rb", params: StorageParams | None = None) -> BinaryIO:
    """Open a local path or s3:// URI in binary mode: 'rb' reads, 'wb' returns an AtomicWriter."""
    if mode == "rb":
        if is_s3(uri):
            return io.BytesIO(s3.read_object(str(uri), params))
        return open(uri, "rb")
    if mode == "wb":
        return AtomicWriter(uri, params)  # type: ignore[return-value]
    raise ValueError(f"open_uri({uri}): mode must be 'rb' or 'wb', got {mode!r}")


def iter_prefix(uri: str | Path, params: StorageParams | None = None) -> Iterator[ObjectInfo]:
    """Like list_prefix, lazily."""
    if is_s3(uri):
        yield from s3.list_objects(str(uri), params)
    else:
        yield from local.list_files(uri)
