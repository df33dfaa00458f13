"""Partition building quarantines a log for any error that log causes, naming the log, and a log whose
scenes come in two places (two sources sharing one log_name) fails alone (issue 13, item 2)."""

from PIL import Image

from drivefine_core.features.params import FeatureParams
from drivefine_core.features.store import build_feature_store
from tests.features.feature_scenes import make_log

SPLIT = "trainval"


def _build(tmp_path, scenes):
    return build_feature_store(scenes, str(tmp_path / "sensor_blobs"), str(tmp_path / "features"), SPLIT,
                               FeatureParams(row_group_size=2))


def _stored(tmp_path):
    return sorted(p.parent.name for p in (tmp_path / "features").rglob("*.parquet"))


def test_a_log_name_seen_twice_fails_that_log_only(tmp_path):
    a, b, c = (make_log(tmp_path, n, 2) for n in ("log-a", "log-b", "log-c"))
    result = _build(tmp_path, a + b + c[:1] + a[:1])  # log-a comes back after others
    assert sorted(result.failed) == ["log-a"] and "not contiguous" in result.failed["log-a"]
    assert result.written == ["log-b", "log-c"] and result.scenes == 3
    assert _stored(tmp_path) == ["log=log-b", "log=log-c"]
    again = _build(tmp_path, a + b + c[:1] + a[:1])  # a rerun does not reuse the ambiguous log either
    assert sorted(again.failed) == ["log-a"] and sorted(again.reused) == ["log-b", "log-c"]


def test_any_error_a_log_causes_fails_that_log_naming_it(tmp_path, monkeypatch):
    good, broken, bomb = (make_log(tmp_path, n, 2) for n in ("log-good", "log-broken", "log-bomb"))
    broken[1].frames[5].ego = None  # AttributeError while hashing the log's content
    result = _build(tmp_path, good + broken)
    assert sorted(result.failed) == ["log-broken"]
    assert "log log-broken" in result.failed["log-broken"] and "AttributeError" in result.failed["log-broken"]
    # a decompression bomb (PIL's own error type) fails its log, not the stage
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    result = _build(tmp_path, good + bomb)
    assert sorted(result.failed) == ["log-bomb"] and "log-bomb" in result.failed["log-bomb"]
    assert result.reused == ["log-good"]


def test_a_partition_corrupted_in_place_is_rebuilt_not_reused(tmp_path):
    """Same size, other bytes: the content hash in the manifest catches it (issue 13, item 4)."""
    scenes = make_log(tmp_path, "log-a", 3)
    first = _build(tmp_path, scenes)
    part = next((tmp_path / "features").rglob("part-0.parquet"))
    good = part.read_bytes()
    assert first.written == ["log-a"]
    part.write_bytes(good[:100] + bytes(b ^ 0xFF for b in good[100:200]) + good[200:])  # same size
    again = _build(tmp_path, scenes)
    assert again.written == ["log-a"] and again.reused == []
    assert part.read_bytes() == good
    assert _build(tmp_path, scenes).reused == ["log-a"]
