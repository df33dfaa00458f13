"""Local paths and s3:// URIs behind one API (fsspec; s3fs for S3): every write atomic, one retry policy.

Importing this package imports fsspec only; s3fs, botocore and pyarrow load when S3 is first used.
"""

from drivefine_core.storage.fs import (
    delete,
    download,
    exists,
    filesystem_for,
    list_prefix,
    open_uri,
    read_bytes,
    stat,
    write_bytes_atomic,
)
from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.uri import StorageError, is_s3, join_uri, split_s3
