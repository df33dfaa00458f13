"""pyarrow filesystems for local paths and s3:// URIs, configured from the same environment as boto3."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.s3 import endpoint_url_from_env, region_from_env
from drivefine_core.storage.uri import is_s3, split_s3


def s3_filesystem_from_env(params: StorageParams | None = None) -> pafs.S3FileSystem:
    """S3FileSystem with endpoint, region and credentials from the AWS_* / MLFLOW_S3_ENDPOINT_URL env,
    and the retry count / timeouts of StorageParams (pyarrow retries its own requests)."""
    p = params or StorageParams()
    kwargs: dict[str, object] = {
        "region": region_from_env(),
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=p.retry_attempts),
        "connect_timeout": p.connect_timeout_s,
        "request_timeout": p.read_timeout_s,
    }
    endpoint = endpoint_url_from_env()
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def filesystem_for(uri: str | Path, params: StorageParams | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or an s3:// URI."""
    if is_s3(uri):
        bucket, key = split_s3(str(uri))
        return s3_filesystem_from_env(params), f"{bucket}/{key}".rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).absolute())
