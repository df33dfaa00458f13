"""Local paths and s3:// URIs behind one API (fsspec; s3fs, botocore, pyarrow load on first use of S3)."""

from drivefine_core.storage.fs import (
    delete,
    download,
    filesystem_for,
    list_prefix,
    open_uri,
    read_bytes,
    stat,
    write_bytes_atomic,
)
from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.uri import StorageError, is_s3, join_uri, split_s3
