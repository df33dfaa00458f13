"""Local paths and s3:// URIs behind one API; every write atomic, S3 calls retried on transient errors."""

from drivefine_core.storage.arrow_fs import filesystem_for, s3_filesystem_from_env
from drivefine_core.storage.api import (
    AtomicWriter,
    delete,
    download,
    exists,
    iter_prefix,
    list_prefix,
    open_uri,
    read_bytes,
    stat,
    upload,
    write_bytes_atomic,
)
from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.s3 import ObjectInfo, abort_incomplete_uploads, endpoint_url_from_env, s3_client
from drivefine_core.storage.uri import StorageError, is_s3, join_uri, split_s3

__all__ = [
    "AtomicWriter",
    "ObjectInfo",
    "StorageError",
    "StorageParams",
    "abort_incomplete_uploads",
    "delete",
    "download",
    "endpoint_url_from_env",
    "exists",
    "filesystem_for",
    "is_s3",
    "iter_prefix",
    "join_uri",
    "list_prefix",
    "open_uri",
    "read_bytes",
    "s3_client",
    "s3_filesystem_from_env",
    "split_s3",
    "stat",
    "upload",
    "write_bytes_atomic",
]
