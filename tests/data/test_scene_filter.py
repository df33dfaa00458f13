import pytest
from tests.data.readers_factory import make_log, write_log

from drivefine_core.data.openscene_reader import read_log
from drivefine_core.data.params import SceneFilter, SplitParams
from drivefine_core.data.scene_filter import assign_split, cut_scenes, hash_fraction


def _frames(tmp_path, n, empty_route_at=()):
    return read_log(write_log(tmp_path, "mini", "log-a", make_log(n, empty_route_at=empty_route_at)))


# Windows are 4 + 10 = 14 frames; starts every `frame_interval` (None -> 14) while start + 14 <= n.
@pytest.mark.parametrize(
    "n, interval, expected_starts",
    [
        (30, None, [0, 14]),  # 28 + 14 > 30
        (28, None, [0, 14]),
        (27, None, [0]),
        (13, None, []),  # too short for one window
        (14, 1, [0]),
        (30, 1, list(range(17))),  # 30 - 14 + 1
        (30, 5, [0, 5, 10, 15]),  # 20 + 14 = 34 > 30
    ],
)
def test_window_counts_by_hand(tmp_path, n, interval, expected_starts):
    frames = _frames(tmp_path, n)
    scenes = cut_scenes(frames, SceneFilter(frame_interval=interval), "log-a", "las_vegas")
    assert [s.token for s in scenes] == [frames[s + 3].token for s in expected_starts]
    for scene, start in zip(scenes, expected_starts):
        assert len(scene.frames) == 14 and scene.frames[0].token == frames[start].token
        assert scene.current_frame.token == scene.token and scene.map_location == "las_vegas"


def test_empty_route_only_matters_on_current_frames(tmp_path):
    # current frames of the default windows are 3 and 17; frame 5 is no current frame
    frames = _frames(tmp_path, 30, empty_route_at=(5,))
    assert len(cut_scenes(frames, SceneFilter(), "log-a", "m")) == 2
    frames = _frames(tmp_path, 30, empty_route_at=(3,))
    kept = cut_scenes(frames, SceneFilter(), "log-a", "m")
    assert [s.token for s in kept] == [frames[17].token]
    assert len(cut_scenes(frames, SceneFilter(has_route=False), "log-a", "m")) == 2
    # overlapping windows: only the window whose current frame is 3 (start 0) goes
    assert len(cut_scenes(frames, SceneFilter(frame_interval=1), "log-a", "m")) == 16


def test_token_log_and_max_filters(tmp_path):
    frames = _frames(tmp_path, 30)
    wanted = [frames[5].token, frames[9].token, "not-there"]
    got = cut_scenes(frames, SceneFilter(frame_interval=1, tokens=wanted), "log-a", "m")
    assert [s.token for s in got] == wanted[:2]
    assert cut_scenes(frames, SceneFilter(log_names=["other"]), "log-a", "m") == []
    assert len(cut_scenes(frames, SceneFilter(frame_interval=1, max_scenes=3), "log-a", "m")) == 3
    assert len(cut_scenes(frames, SceneFilter(frame_interval=1), "log-a", "m", limit=5)) == 5


def test_custom_history_length(tmp_path):
    frames = _frames(tmp_path, 20)
    scenes = cut_scenes(frames, SceneFilter(num_history_frames=2, num_future_frames=8), "log-a", "m")
    assert [s.token for s in scenes] == [frames[1].token, frames[11].token]
    assert all(s.num_history_frames == 2 for s in scenes)


def test_hash_split_is_deterministic_and_by_fraction():
    names = [f"2021.{i:04d}_veh-{i % 7}" for i in range(2000)]
    params = SplitParams(test_fraction=0.2)
    splits = [assign_split(n, "trainval", params) for n in names]
    assert splits == [assign_split(n, "other-folder", params) for n in names]
    share = splits.count("test") / len(splits)
    assert 0.16 < share < 0.24
    assert set(assign_split(n, "x", SplitParams(test_fraction=0.0)) for n in names) == {"train"}
    assert set(assign_split(n, "x", SplitParams(test_fraction=1.0)) for n in names) == {"test"}
    other_salt = [assign_split(n, "x", SplitParams(test_fraction=0.2, salt="b")) for n in names]
    assert other_salt != splits
    assert 0.0 <= hash_fraction("a", "s") < 1.0


def test_folder_split():
    params = SplitParams(mode="folder", folder_map={"trainval": "train"})
    assert assign_split("log", "trainval", params) == "train"
    assert assign_split("log", "test", params) == "test"


def test_filter_rejects_unknown_knobs():
    with pytest.raises(ValueError):
        SceneFilter(num_history=4)
