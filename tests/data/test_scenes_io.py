import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.data.readers_factory import make_log, write_log

from drivefine_core.data.errors import DataFormatError
from drivefine_core.data.openscene_reader import read_log
from drivefine_core.data.params import SceneFilter
from drivefine_core.data.scene_filter import cut_scenes
from drivefine_core.data.scenes_io import (
    SCENE_SCHEMA,
    ScenesWriter,
    read_scene_index,
    read_scenes,
    read_scenes_with_meta,
    write_scenes,
)


def assert_same(a, b, where="scene"):
    """Deep equality over dataclasses, lists, dicts and numpy arrays (dtype and shape included)."""
    assert type(a) is type(b), where
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k}]")
    else:
        assert a == b, where


def _scenes(tmp_path):
    raw = make_log(20)
    raw[4]["anns"] = {k: [] for k in raw[4]["anns"]}  # a frame with no objects
    raw[5]["traffic_lights"] = []
    raw[6]["ego2global_translation"] = np.array([1e7 + 1 / 3, -2.0 / 7, 0.0])  # full float64 precision
    frames = read_log(write_log(tmp_path, "mini", "log-a", raw))
    frames[7].annotations.velocity_3d[0, 0] = np.nan  # NaN velocities survive too
    frames[8].cameras = {}  # hidden-split style frame without cameras
    return cut_scenes(frames, SceneFilter(frame_interval=2), "log-a", "us-nv-las-vegas-strip")


def test_round_trip_exact(tmp_path):
    scenes = _scenes(tmp_path)
    assert len(scenes) == 4
    path = write_scenes(scenes, tmp_path / "out" / "train.parquet", split="train", row_group_scenes=3, source_split="mini")
    back = list(read_scenes(path, batch_size=2))
    assert len(back) == len(scenes)
    assert np.isnan(back[0].frames[7].annotations.velocity_3d[0, 0])
    for a, b in zip(scenes, back):
        assert_same(a, b)  # assert_array_equal treats NaN == NaN
    np.testing.assert_array_equal(back[0].history_trajectory(), scenes[0].history_trajectory())
    index = read_scene_index(path)
    assert index.column("token").to_pylist() == [s.token for s in scenes]
    assert set(index.column("split").to_pylist()) == {"train"}
    assert {(m.split, m.source_split) for _, m in read_scenes_with_meta(path)} == {("train", "mini")}
    stored = pq.read_schema(path)
    assert stored.names == SCENE_SCHEMA.names and stored.metadata == SCENE_SCHEMA.metadata
    assert pq.ParquetFile(path).metadata.num_row_groups == 2


def test_empty_file_and_wrong_version(tmp_path):
    path = write_scenes([], tmp_path / "empty.parquet")
    assert list(read_scenes(path)) == []
    other = tmp_path / "other.parquet"
    pq.write_table(pq.read_table(path).replace_schema_metadata({}), other)
    with pytest.raises(DataFormatError, match="schema_version"):
        list(read_scenes(other))


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "s.parquet"
    scenes = _scenes(tmp_path)
    with pytest.raises(RuntimeError):
        with ScenesWriter(target, row_group_scenes=1) as writer:
            writer.write(scenes, "train")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.glob("*.parquet*")) == [] and list(tmp_path.glob(".s.parquet*")) == []
