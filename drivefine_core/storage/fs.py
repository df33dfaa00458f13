"""Local paths and s3:// URIs through fsspec (s3fs for S3), behind the few calls the pipeline makes.

One retry policy: botocore's standard mode, `StorageParams.retry_attempts` tries per S3 request, set in
`s3_filesystem` alone (s3fs's own loop is off); then a `StorageError` names the URI. Writes are atomic:
local files by `write_file_atomic`; S3 objects by one PUT, or a multipart upload completed after its last
part and aborted on error (never an object; `abort_incomplete_uploads` clears what an outage left).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import fsspec

from drivefine_core.storage.local import write_file_atomic
from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.uri import StorageError, is_s3, join_uri, split_s3


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    tag: str  # S3: the ETag; local: the mtime. Changes when the content is rewritten.


def s3_filesystem(params: StorageParams | None = None) -> Any:
    """s3fs for the environment's endpoint (AWS_ENDPOINT_URL, else MLFLOW_S3_ENDPOINT_URL; none: AWS), region
    and keys; fsspec caches one per process and configuration; listings are not cached (other writers)."""
    import s3fs

    p, env = params or StorageParams(), os.environ.get
    endpoint = env("AWS_ENDPOINT_URL") or env("MLFLOW_S3_ENDPOINT_URL") or None
    fs = s3fs.S3FileSystem(
        endpoint_url=endpoint, key=env("AWS_ACCESS_KEY_ID"), secret=env("AWS_SECRET_ACCESS_KEY"), token=env("AWS_SESSION_TOKEN"),
        use_listings_cache=False, default_block_size=int(p.multipart_chunk_mb * 2**20),
        client_kwargs={"region_name": env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1"},
        config_kwargs={"retries": {"mode": "standard", "total_max_attempts": p.retry_attempts},
                       "connect_timeout": p.connect_timeout_s, "read_timeout": p.read_timeout_s,
                       "s3": {"addressing_style": "path"} if endpoint else {}},
    )
    fs.retries = 1  # botocore retries each request; s3fs would retry the same request again
    return fs


def filesystem(uri: str | Path, params: StorageParams | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a local path or an s3:// URI."""
    if is_s3(uri):
        return s3_filesystem(params), "/".join(split_s3(str(uri))).rstrip("/")
    return fsspec.filesystem("file"), Path(uri).absolute().as_posix()


def filesystem_for(uri: str | Path, params: StorageParams | None = None) -> tuple[Any, str]:
    """The same store as a pyarrow filesystem (for Parquet readers): one client, one retry policy."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri, params)
    return (pafs.PyFileSystem(pafs.FSSpecHandler(fs)) if is_s3(uri) else pafs.LocalFileSystem()), path


@contextmanager
def _named(what: str, uri: str | Path) -> Iterator[None]:
    """Errors that name the URI: FileNotFoundError, or StorageError once the tries are spent on an endpoint
    that did not answer, or answered 5xx / slow down."""
    try:
        yield
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{uri}: no such file or object ({exc})") from None
    except Exception as exc:
        # imported here: local reads never load botocore
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        busy = isinstance(exc, OSError) and exc.errno in (getattr(errno, "EREMOTEIO", errno.EIO), errno.EBUSY)
        if busy or isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError)):
            raise StorageError(f"{what} {uri}: failed after its retries: {exc}") from exc
        raise


def read_bytes(uri: str | Path, params: StorageParams | None = None, max_bytes: int | None = None) -> bytes:
    """The file's bytes; with max_bytes, at most max_bytes + 1 of them are read (on S3 a Range GET)."""
    fs, path = filesystem(uri, params)
    with _named("read", uri):
        if max_bytes is None:
            return fs.cat_file(path)
        try:
            return fs.cat_file(path, start=0, end=max_bytes + 1)
        except OSError as exc:  # S3 answers a range of an empty object with 416 InvalidRange
            if fs.info(path)["size"]:
                raise exc
            return b""


def write_bytes_atomic(uri: str | Path, data: bytes | BinaryIO, params: StorageParams | None = None) -> int:
    """Write all of data to uri or nothing; returns the bytes written."""
    if not is_s3(uri):
        return write_file_atomic(uri, data)
    fs, path = filesystem(uri, params)
    with _named("write", uri):
        f = fs.open(path, "wb")  # parts of multipart_chunk_mb once the data outgrows one
        try:
            shutil.copyfileobj(io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data, f)
            n = f.tell()
            f.close()  # the single PUT, or the last part and the completion
        except BaseException:
            with suppress(Exception):  # one try: the store may be the thing that is down
                f.discard()
            f.closed = True  # so that no later close() publishes what was buffered
            raise
    return n


def abort_incomplete_uploads(uri: str, params: StorageParams | None = None) -> int:
    """Abort every incomplete multipart upload under uri (left by an outage); returns how many."""
    fs, (bucket, key) = s3_filesystem(params), split_s3(uri)
    with _named("abort uploads", uri):
        uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key).get("Uploads", [])
        for up in uploads:
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    return len(uploads)


def _info(uri: str, info: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(uri, int(info["size"]), str(info.get("ETag") or info.get("mtime") or "").strip('"'))


def list_prefix(uri: str | Path, params: StorageParams | None = None) -> list[ObjectInfo]:
    """Every file / object under the directory uri, recursive, sorted; temp files of writers skipped."""
    fs, path = filesystem(uri, params)
    with _named("list", uri):
        found = fs.find(path + "/", detail=True) if is_s3(uri) or fs.isdir(path) else {}
    rels = ((name, name[len(path) + 1 :]) for name in sorted(found))
    return [_info(join_uri(uri, rel), found[name]) for name, rel in rels
            if rel and not (rel.rsplit("/", 1)[-1].startswith(".") and rel.endswith(".tmp"))]


def stat(uri: str | Path, params: StorageParams | None = None) -> ObjectInfo | None:
    """Size and change tag of one file / object; None when it does not exist."""
    fs, path = filesystem(uri, params)
    with suppress(FileNotFoundError), _named("stat", uri):
        info = fs.info(path)
        return _info(str(uri), info) if info["type"] == "file" else None
    return None


def delete(uri: str | Path, params: StorageParams | None = None) -> None:
    """Remove one file / object; a missing one is not an error."""
    fs, path = filesystem(uri, params)
    with suppress(FileNotFoundError), _named("delete", uri):
        fs.rm_file(path)


def open_uri(uri: str | Path, params: StorageParams | None = None) -> BinaryIO:
    """A local path or s3:// URI opened for binary reading (S3 reads ranges as needed; writes: write_bytes_atomic)."""
    fs, path = filesystem(uri, params)
    with _named("open", uri):
        return fs.open(path, "rb")


def download(uri: str, dest: str | Path, params: StorageParams | None = None) -> Path:
    """Copy uri (s3:// or local) to the local path dest, atomically."""
    with open_uri(uri, params) as src, _named("download", uri):
        write_file_atomic(dest, src)
    return Path(dest)
