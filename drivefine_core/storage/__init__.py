"""Local paths and s3:// URIs behind one API; every write atomic, S3 calls retried on transient errors.

The names below load on first use, so that validating params.yaml (storage/params.py) imports
neither boto3 nor pyarrow.
"""

from typing import TYPE_CHECKING

from drivefine_core._lazy import lazy_exports

if TYPE_CHECKING:
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
    from drivefine_core.storage.arrow_fs import filesystem_for, s3_filesystem_from_env
    from drivefine_core.storage.params import StorageParams
    from drivefine_core.storage.s3 import (
        ObjectInfo,
        abort_incomplete_uploads,
        endpoint_url_from_env,
        s3_client,
    )
    from drivefine_core.storage.uri import StorageError, is_s3, join_uri, split_s3

_EXPORTS = {
    "filesystem_for": "drivefine_core.storage.arrow_fs",
    "s3_filesystem_from_env": "drivefine_core.storage.arrow_fs",
    "AtomicWriter": "drivefine_core.storage.api",
    "delete": "drivefine_core.storage.api",
    "download": "drivefine_core.storage.api",
    "exists": "drivefine_core.storage.api",
    "iter_prefix": "drivefine_core.storage.api",
    "list_prefix": "drivefine_core.storage.api",
    "open_uri": "drivefine_core.storage.api",
    "read_bytes": "drivefine_core.storage.api",
    "stat": "drivefine_core.storage.api",
    "upload": "drivefine_core.storage.api",
    "write_bytes_atomic": "drivefine_core.storage.api",
    "StorageParams": "drivefine_core.storage.params",
    "ObjectInfo": "drivefine_core.storage.s3",
    "abort_incomplete_uploads": "drivefine_core.storage.s3",
    "endpoint_url_from_env": "drivefine_core.storage.s3",
    "s3_client": "drivefine_core.storage.s3",
    "StorageError": "drivefine_core.storage.uri",
    "is_s3": "drivefine_core.storage.uri",
    "join_uri": "drivefine_core.storage.uri",
    "split_s3": "drivefine_core.storage.uri",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
