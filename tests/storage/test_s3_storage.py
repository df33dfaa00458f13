import io
import threading

import pytest

from drivefine_core.storage import (
    StorageError,
    StorageParams,
    delete,
    download,
    list_prefix,
    open_uri,
    read_bytes,
    stat,
    write_bytes_atomic,
)
from drivefine_core.storage.fs import abort_incomplete_uploads

MB = 1024 * 1024
FAST = StorageParams(retry_attempts=2, connect_timeout_s=1, read_timeout_s=5, multipart_chunk_mb=5)


def test_put_get_list_delete(s3_bucket, tmp_path):
    base = f"s3://{s3_bucket}/dir"
    write_bytes_atomic(f"{base}/a.bin", b"aaa")
    write_bytes_atomic(f"{base}/sub/b.bin", b"bb")
    write_bytes_atomic(f"s3://{s3_bucket}/dirx/c.bin", b"c")  # a sibling prefix, not under dir/
    assert read_bytes(f"{base}/a.bin") == b"aaa"
    assert [(o.uri, o.size) for o in list_prefix(base)] == [(f"{base}/a.bin", 3), (f"{base}/sub/b.bin", 2)]
    assert stat(f"{base}/nope") is None
    with pytest.raises(FileNotFoundError, match="nope"):
        read_bytes(f"{base}/nope")
    (tmp_path / "src.bin").write_bytes(b"payload")
    with open(tmp_path / "src.bin", "rb") as f:
        assert write_bytes_atomic(f"{base}/up.bin", f) == 7
    assert download(f"{base}/up.bin", tmp_path / "back.bin").read_bytes() == b"payload"
    with open_uri(f"{base}/up.bin") as f:
        assert f.read() == b"payload"
    delete(f"{base}/up.bin")
    delete(f"{base}/up.bin")  # a missing object is not an error
    assert stat(f"{base}/up.bin") is None


def test_multipart_round_trip(s3_bucket):
    data = bytes(range(256)) * (11 * MB // 256 + 7)  # three parts, the last one short
    uri = f"s3://{s3_bucket}/big.bin"
    assert write_bytes_atomic(uri, io.BytesIO(data), FAST) == len(data)
    assert read_bytes(uri) == data


class StopsEndpoint(io.RawIOBase):
    """A source stream that takes the S3 endpoint down once `after` bytes were read (mid multipart upload)."""

    def __init__(self, data: bytes, after: int, server) -> None:
        self.buf = io.BytesIO(data)
        self.after = after
        self.server = server

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.buf.tell() >= self.after and self.server.running:
            self.server.stop()
        return self.buf.readinto(b)


def test_endpoint_stopped_mid_write_leaves_no_object_and_retry_succeeds(s3_server, s3_bucket):
    data = b"z" * (12 * MB)
    uri = f"s3://{s3_bucket}/features/log=a/part-0.parquet"
    with pytest.raises(StorageError, match="part-0.parquet"):
        write_bytes_atomic(uri, StopsEndpoint(data, 6 * MB, s3_server), FAST)
    assert not s3_server.running
    s3_server.start()
    assert stat(uri, FAST) is None
    assert list_prefix(f"s3://{s3_bucket}/features") == []
    # The upload could not be aborted while the endpoint was down: clear it now.
    assert abort_incomplete_uploads(f"s3://{s3_bucket}/features") == 1
    assert write_bytes_atomic(uri, io.BytesIO(data), FAST) == len(data)
    assert stat(uri).size == len(data) and read_bytes(uri) == data


def test_transient_outage_is_retried_with_backoff(s3_server, s3_bucket):
    s3_server.stop()
    timer = threading.Timer(0.6, s3_server.start)
    timer.start()
    try:
        patient = StorageParams(retry_attempts=8, connect_timeout_s=1)  # botocore backs off: random * 2^try s
        write_bytes_atomic(f"s3://{s3_bucket}/x.bin", b"after the outage", patient)
    finally:
        timer.join()
    assert read_bytes(f"s3://{s3_bucket}/x.bin") == b"after the outage"


def test_client_errors_are_not_retried(s3_env):
    with pytest.raises(Exception) as info:
        write_bytes_atomic("s3://no-such-bucket-here/x", b"1", FAST)
    assert isinstance(info.value, FileNotFoundError) and "bucket does not exist" in str(info.value)
    assert not isinstance(info.value, StorageError)


def test_read_limited_asks_s3_for_at_most_limit_plus_one_bytes(s3_bucket):
    from drivefine_core.storage.safe_paths import UnreadableFileError, read_limited

    uri = f"s3://{s3_bucket}/blobs/big.jpg"
    write_bytes_atomic(uri, b"x" * 5000)
    write_bytes_atomic(f"s3://{s3_bucket}/blobs/empty.jpg", b"")
    assert read_limited(uri, 5000, FAST) == b"x" * 5000
    with pytest.raises(UnreadableFileError, match="over the limit of 100 bytes"):
        read_limited(uri, 100, FAST)
    assert read_limited(f"s3://{s3_bucket}/blobs/empty.jpg", 100, FAST) == b""
    with pytest.raises(FileNotFoundError):
        read_limited(f"s3://{s3_bucket}/blobs/nope.jpg", 100, FAST)
