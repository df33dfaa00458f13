import io

import pytest

from drivefine_core.storage import download, list_prefix, open_uri, read_bytes, stat, write_bytes_atomic


class Exploding(io.RawIOBase):
    """A stream that fails after some bytes, as a crashing producer would."""

    def __init__(self, n_ok: int) -> None:
        self.left = n_ok

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.left <= 0:
            raise OSError("producer died")
        n = min(len(b), self.left)
        b[:n] = b"x" * n
        self.left -= n
        return n


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "f.bin"
    assert write_bytes_atomic(target, b"old") == 3
    with pytest.raises(OSError, match="producer died"):
        write_bytes_atomic(target, Exploding(1000))
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]
    with open(target, "rb") as f:  # a stream is copied whole
        assert write_bytes_atomic(tmp_path / "copy.bin", f) == 3
    assert read_bytes(tmp_path / "copy.bin") == b"old"
    with open_uri(target) as f:
        assert f.read() == b"old"


def test_list_stat_download_upload(tmp_path):
    write_bytes_atomic(tmp_path / "d" / "x" / "1.bin", b"1")
    write_bytes_atomic(tmp_path / "d" / "2.bin", b"22")
    (tmp_path / "d" / ".3.bin.k2j4.tmp").write_bytes(b"a writer's temp file: not listed")
    listed = list_prefix(tmp_path / "d")
    assert [(o.uri.rsplit("d/", 1)[1], o.size) for o in listed] == [("2.bin", 2), ("x/1.bin", 1)]
    assert stat(tmp_path / "nope") is None and stat(tmp_path / "d" / "2.bin").size == 2
    download(str(tmp_path / "d" / "2.bin"), tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"22"
    with pytest.raises(FileNotFoundError, match="nope"):
        read_bytes(tmp_path / "nope")
