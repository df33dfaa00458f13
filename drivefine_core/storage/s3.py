"""S3 objects via boto3: endpoint and credentials from the environment, atomic puts, retries.

Atomicity: an object is written by one PUT, or by a multipart upload that is completed only after every
part is in; on any error the upload is aborted (best effort: an incomplete upload is never visible as
an object, and abort_incomplete_uploads() clears leftovers after an outage).
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.retry import with_retries
from drivefine_core.storage.uri import as_dir_prefix, split_s3

_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def endpoint_url_from_env() -> str | None:
    """AWS_ENDPOINT_URL (boto3's own variable) first, then MLflow's MLFLOW_S3_ENDPOINT_URL; None = AWS."""
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None


def region_from_env() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def s3_client(params: StorageParams | None = None) -> Any:
    """A boto3 S3 client for the current environment, cached per process and configuration.

    botocore's own retries are off: with_retries() owns the policy so it is the same for every call.
    """
    p = params or StorageParams()
    endpoint = endpoint_url_from_env()
    key = (
        os.getpid(),  # clients must not cross a fork (DataLoader workers)
        endpoint,
        region_from_env(),
        os.environ.get("AWS_ACCESS_KEY_ID"),
        p.connect_timeout_s,
        p.read_timeout_s,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=p.connect_timeout_s,
                read_timeout=p.read_timeout_s,
                s3={"addressing_style": "path"} if endpoint else None,
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint, region_name=region_from_env(), config=config
            )
            _clients[key] = client
    return client


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    tag: str  # S3: the ETag; local: the mtime in ns. Changes when the content is rewritten.


def _is_missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


def read_object(uri: str, params: StorageParams | None = None, max_bytes: int | None = None) -> bytes:
    """The object's bytes; with max_bytes, at most max_bytes + 1 of them are requested (a Range GET), so
    a caller sees that the object is larger than its limit without downloading it."""
    bucket, key = split_s3(uri)
    extra = {} if max_bytes is None else {"Range": f"bytes=0-{max_bytes}"}

    def get() -> bytes:
        try:
            body = s3_client(params).get_object(Bucket=bucket, Key=key, **extra)["Body"]
            return body.read() if max_bytes is None else body.read(max_bytes + 1)
        except ClientError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"{uri}: no such object") from None
            if max_bytes is not None and str(exc.response.get("Error", {}).get("Code", "")) == "InvalidRange":
                return b""  # a range of an empty object
            raise

    return with_retries(get, f"read {uri}", params)


def head_object(uri: str, params: StorageParams | None = None) -> ObjectInfo | None:
    bucket, key = split_s3(uri)

    def head() -> ObjectInfo | None:
        try:
            r = s3_client(params).head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return ObjectInfo(uri, int(r["ContentLength"]), str(r.get("ETag", "")).strip('"'))

    return with_retries(head, f"head {uri}", params)


def list_objects(uri: str, params: StorageParams | None = None) -> Iterator[ObjectInfo]:
    """Every object under the 'directory' uri (recursive), in key order."""
    bucket, key = split_s3(uri)
    prefix = as_dir_prefix(key)

    def page(token: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        return s3_client(params).list_objects_v2(**kwargs)

    token: str | None = None
    while True:
        resp = with_retries(lambda: page(token), f"list s3://{bucket}/{prefix}", params)  # noqa: B023 - called before the loop moves on
        for obj in resp.get("Contents", []):
            yield ObjectInfo(f"s3://{bucket}/{obj['Key']}", int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))
        if not resp.get("IsTruncated"):
            return
        token = resp.get("NextContinuationToken")


def delete_object(uri: str, params: StorageParams | None = None) -> None:
    bucket, key = split_s3(uri)
    with_retries(lambda: s3_client(params).delete_object(Bucket=bucket, Key=key), f"delete {uri}", params)


def _read_full(stream: BinaryIO, n: int) -> bytes:
    """Read up to n bytes, looping over short reads (pipes, sockets)."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        b = stream.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def write_object_atomic(uri: str, data: bytes | BinaryIO, params: StorageParams | None = None) -> int:
    """Write bytes or a binary stream to uri so that readers see the old object or the whole new one.

    Returns the number of bytes written.
    """
    p = params or StorageParams()
    stream: BinaryIO = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    first = _read_full(stream, p.multipart_threshold_bytes + 1)
    bucket, key = split_s3(uri)
    if len(first) <= p.multipart_threshold_bytes:
        with_retries(lambda: s3_client(p).put_object(Bucket=bucket, Key=key, Body=first), f"write {uri}", p)
        return len(first)
    return _multipart(uri, bucket, key, first, stream, p)


def _multipart(uri: str, bucket: str, key: str, head: bytes, stream: BinaryIO, p: StorageParams) -> int:
    upload_id = with_retries(
        lambda: s3_client(p).create_multipart_upload(Bucket=bucket, Key=key)["UploadId"], f"start upload {uri}", p
    )
    parts: list[dict[str, Any]] = []
    total = 0
    pending = head
    try:
        while True:
            # Top up to one full chunk; the stream's end makes the last (possibly short) part.
            if len(pending) < p.multipart_chunk_bytes:
                pending += _read_full(stream, p.multipart_chunk_bytes - len(pending))
            chunk, pending = pending[: p.multipart_chunk_bytes], pending[p.multipart_chunk_bytes :]
            if not chunk:
                break
            number = len(parts) + 1

            def put_part(chunk: bytes = chunk, number: int = number) -> str:
                r = s3_client(p).upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)
                return str(r["ETag"])

            etag = with_retries(put_part, f"upload part {number} of {uri}", p)
            parts.append({"PartNumber": number, "ETag": etag})
            total += len(chunk)
        with_retries(
            lambda: s3_client(p).complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            ),
            f"complete upload {uri}",
            p,
        )
    except BaseException:
        try:  # one try only: the store may be the thing that is down
            s3_client(p).abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    return total


def abort_incomplete_uploads(uri: str, params: StorageParams | None = None) -> int:
    """Abort every incomplete multipart upload under uri (left by an outage); returns how many."""
    bucket, key = split_s3(uri)
    resp = with_retries(
        lambda: s3_client(params).list_multipart_uploads(Bucket=bucket, Prefix=key), f"list uploads {uri}", params
    )
    n = 0
    for up in resp.get("Uploads", []):
        with_retries(
            lambda up=up: s3_client(params).abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"]),
            f"abort upload s3://{bucket}/{up['Key']}",
            params,
        )
        n += 1
    return n


def download_object(uri: str, dest_fileobj: BinaryIO, params: StorageParams | None = None) -> int:
    """Stream an object into an open binary file (rewound and truncated on each retry)."""
    bucket, key = split_s3(uri)

    def get() -> int:
        dest_fileobj.seek(0)
        dest_fileobj.truncate()
        try:
            body = s3_client(params).get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"{uri}: no such object") from None
            raise
        n = 0
        for chunk in body.iter_chunks(1 << 20):
            dest_fileobj.write(chunk)
            n += len(chunk)
        return n

    return with_retries(get, f"download {uri}", params)
