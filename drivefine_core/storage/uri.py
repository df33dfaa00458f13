"""URIs: a local path or s3://bucket/key. Nothing here touches the network."""

from __future__ import annotations

from pathlib import Path


class StorageError(RuntimeError):
    """A read or write failed after its retries; the message names the URI."""


def is_transient(exc: BaseException | None) -> bool:
    """An endpoint that did not answer - retry later, blame no input: a StorageError (storage's retries are
    spent), or a connection error or timeout anywhere in the chain (MLflow and requests keep the socket's
    error as cause or context). The one test for it: the data stages re-raise these instead of failing a
    log, and a stage that dies of one exits 75 so that the flow retries it."""
    while exc is not None:
        if isinstance(exc, (StorageError, ConnectionError, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
