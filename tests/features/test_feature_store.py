import json

import pyarrow.parquet as pq
import pytest

from drivefine_core.features.arrow_schema import METADATA_KEY
from drivefine_core.features.params import SCHEMA_VERSION, FeatureParams
from drivefine_core.features.store import build_feature_store, partition_path
from tests.features.feature_scenes import make_log

SPLIT = "trainval"


@pytest.fixture
def logs(tmp_path):
    return {name: make_log(tmp_path, name, n) for name, n in (("log-a", 5), ("log-b", 3), ("log-c", 4))}


def build(tmp_path, scenes, params=None, out="features", **kw):
    return build_feature_store(scenes, str(tmp_path / "sensor_blobs"), str(tmp_path / out), SPLIT, params or FeatureParams(row_group_size=2), **kw)


def test_adding_a_log_computes_only_that_log(tmp_path, logs):
    first = build(tmp_path, logs["log-a"] + logs["log-b"])
    assert sorted(first.written) == ["log-a", "log-b"] and first.reused == []
    mtimes = {n: (tmp_path / "features" / partition_path(n)).stat().st_mtime_ns for n in ("log-a", "log-b")}
    second = build(tmp_path, logs["log-a"] + logs["log-b"] + logs["log-c"])
    assert second.written == ["log-c"]
    assert sorted(second.reused) == ["log-a", "log-b"]
    assert {n: (tmp_path / "features" / partition_path(n)).stat().st_mtime_ns for n in mtimes} == mtimes
    assert second.scenes == 12 and second.scenes_written == 4
    m = second.metrics()
    assert (m["logs_written"], m["logs_reused"], m["scenes"]) == (1.0, 2.0, 12.0)
    manifest = json.loads((tmp_path / "features" / "_manifest.json").read_text())
    assert {n: e["rows"] for n, e in manifest["logs"].items()} == {"log-a": 5, "log-b": 3, "log-c": 4}
    assert manifest["logs"]["log-a"]["row_groups"] == [2, 2, 1]


def test_image_size_change_recomputes_everything_loader_knobs_do_not(tmp_path, logs):
    scenes = logs["log-a"] + logs["log-b"]
    build(tmp_path, scenes, FeatureParams())
    same = build(tmp_path, scenes, FeatureParams(shuffle_buffer=7, seed=3))
    assert same.written == [] and sorted(same.reused) == ["log-a", "log-b"]
    bigger = build(tmp_path, scenes, FeatureParams(image_width=192, image_height=108))
    assert sorted(bigger.written) == ["log-a", "log-b"] and bigger.reused == []
    meta = json.loads(pq.read_schema(tmp_path / "features" / partition_path("log-a")).metadata[METADATA_KEY])
    assert (meta["image_width"], meta["image_height"], meta["schema_version"]) == (192, 108, SCHEMA_VERSION)


def test_changed_log_content_recomputes_that_log_and_removed_log_is_pruned(tmp_path, logs):
    build(tmp_path, logs["log-a"] + logs["log-b"] + logs["log-c"])
    logs["log-b"][0].frames[5].ego.velocity = logs["log-b"][0].frames[5].ego.velocity + 1.0
    again = build(tmp_path, logs["log-a"] + logs["log-b"])
    assert again.written == ["log-b"] and again.reused == ["log-a"] and again.removed == ["log-c"]
    assert not (tmp_path / "features" / partition_path("log-c")).exists()


def test_partition_layout_rows_and_size(tmp_path, logs):
    res = build(tmp_path, logs["log-a"])
    f = pq.ParquetFile(tmp_path / "features" / "log=log-a" / "part-0.parquet")
    assert f.metadata.num_rows == 5 and f.metadata.num_row_groups == 3
    assert f.metadata.row_group(0).column(0).compression == "ZSTD"
    assert f.schema_arrow.metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    tokens = f.read(columns=["token"])["token"].to_pylist()
    assert tokens == [s.token for s in logs["log-a"]]
    assert 0 < res.bytes_per_scene < 50_000
    assert res.bytes == (tmp_path / "features" / "log=log-a" / "part-0.parquet").stat().st_size


def test_build_is_deterministic_with_or_without_worker_processes(tmp_path, logs):
    scenes = logs["log-a"] + logs["log-b"] + logs["log-c"]
    one = build(tmp_path, scenes, out="one")
    two = build(tmp_path, scenes, FeatureParams(row_group_size=2, build_workers=2), out="two")
    assert one.written == two.written == ["log-a", "log-b", "log-c"]
    for name in one.written:
        p = partition_path(name)
        assert (tmp_path / "one" / p).read_bytes() == (tmp_path / "two" / p).read_bytes()
    assert (tmp_path / "one" / "_manifest.json").read_text() == (tmp_path / "two" / "_manifest.json").read_text()


def test_bad_image_fails_its_log_only(tmp_path, logs):
    bad = logs["log-b"][1].current_frame.cameras["CAM_F0"].data_path
    (tmp_path / "sensor_blobs" / SPLIT / bad).write_bytes(b"not a jpeg")
    res = build(tmp_path, logs["log-a"] + logs["log-b"] + logs["log-c"])
    assert sorted(res.written) == ["log-a", "log-c"]
    assert list(res.failed) == ["log-b"] and bad in res.failed["log-b"] and "image" in res.failed["log-b"]
    assert not (tmp_path / "features" / partition_path("log-b")).exists()


def test_scenes_of_a_log_must_be_contiguous(tmp_path, logs):
    result = build(tmp_path, logs["log-a"][:2] + logs["log-b"] + logs["log-a"][2:])
    assert list(result.failed) == ["log-a"] and "contiguous" in result.failed["log-a"]
    assert result.written == ["log-b"]


def test_the_validation_logs_are_the_last_by_name_and_left_out_of_the_sft_dataset(tmp_path, logs):
    """sft.hold_out_validation_logs: the sft stage reads the store without the logs RL validates on."""
    from drivefine_core.features.dataset import InMemoryFeatureDataset
    from drivefine_core.features.row_groups import store_logs
    from drivefine_core.training.splits import last_logs

    build(tmp_path, logs["log-c"] + logs["log-a"] + logs["log-b"])
    uri = str(tmp_path / "features")
    assert store_logs(uri) == ["log-a", "log-b", "log-c"]
    held = last_logs(store_logs(uri), 1, "the store")
    assert held == ["log-c"] and last_logs(store_logs(uri), 0) == []
    kept = InMemoryFeatureDataset(uri, logs=[g for g in store_logs(uri) if g not in held])
    log_c = {s.token for s in logs["log-c"]}
    assert len(kept) == 8 and not log_c & set(kept.tokens)
    with pytest.raises(ValueError, match="rl.validation_logs=3: the store come from 3 logs"):
        last_logs(store_logs(uri), 3, "the store")
