"""URIs: a local path or s3://bucket/key. Nothing here touches the network."""

from __future__ import annotations

from pathlib import Path


class StorageError(RuntimeError):
    """A read or write failed after its retries; the message names the URI."""


def is_s3(uri: str | Path) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    bucket, _, key = uri[len("s3://") :].partition("/") if is_s3(uri) else ("", "", "")
    if not bucket:
        raise ValueError(f"{uri}: not an s3://<bucket>/<key> URI")
    return bucket, key


def join_uri(base: str | Path, *parts: str) -> str:
    """Join path parts onto a local path or an s3:// URI with '/'."""
    if is_s3(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base).joinpath(*parts))
