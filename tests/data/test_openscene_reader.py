import math
import pickle

import numpy as np
import pytest
from tests.data.readers_factory import make_log, write_log

from drivefine_core.data.errors import LogFormatError
from drivefine_core.data.openscene_reader import load_log, quaternion_yaw, read_log


def test_reads_frames(tmp_path):
    path = write_log(tmp_path, "mini", "log-a", make_log(6))
    log = load_log(path)
    assert (log.log_name, log.map_location, len(log.frames)) == ("log-a", "las_vegas", 6)
    f = log.frames[3]
    np.testing.assert_allclose(f.ego.pose, [107.5, 50.3, 0.03], atol=1e-12)
    np.testing.assert_array_equal(f.ego.velocity, [5.0, 0.1])
    np.testing.assert_array_equal(f.ego.acceleration, [0.2, 0.01])
    np.testing.assert_array_equal(f.ego.driving_command, [0, 1, 0, 0])
    assert f.timestamp_us == 1_600_000_000_000_000 + 1_500_000
    assert f.traffic_lights == [("7", True), ("8", False)]  # int fids become strings
    assert f.roadblock_ids == ["1", "2"]
    assert sorted(f.cameras) == sorted(["CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0"])
    assert f.cameras["CAM_F0"].data_path == f"log-a/CAM_F0/{f.token}.jpg" and len(f.token) == 16
    assert f.cameras["CAM_F0"].intrinsic.shape == (3, 3)
    assert f.annotations.boxes.shape == (2, 7) and f.annotations.names == ["vehicle", "pedestrian"]
    assert f.annotations.track_tokens == ["track0", "track1"]


def test_quaternion_yaw():
    for yaw in (-3.0, -0.5, 0.0, 1.2, 3.1):
        assert quaternion_yaw(np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])) == pytest.approx(yaw)


def _error(tmp_path, frames, **kw) -> LogFormatError:
    path = write_log(tmp_path, "mini", "bad", frames)
    with pytest.raises(LogFormatError) as info:
        read_log(path, **kw)
    assert str(path) in str(info.value)
    return info.value


def test_truncated_pickle(tmp_path):
    path = write_log(tmp_path, "mini", "cut", make_log(5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert info.value.field == "<pickle>" and "truncated" in info.value.reason
    assert str(path) in str(info.value)


def test_garbage_and_wrong_top_level(tmp_path):
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"\x00\x01not a pickle at all")
    with pytest.raises(LogFormatError, match="junk.pkl"):
        read_log(path)
    path.write_bytes(pickle.dumps({"token": "x"}))
    with pytest.raises(LogFormatError, match="list of frame dicts"):
        read_log(path)


@pytest.mark.parametrize("field", ["ego2global_translation", "ego2global_rotation"])
def test_nan_pose(tmp_path, field):
    frames = make_log(5)
    frames[2][field] = np.array(frames[2][field], dtype=float)
    frames[2][field][0] = np.nan
    err = _error(tmp_path, frames)
    assert (err.frame, err.field) == (2, field)
    assert "NaN" in err.reason


def test_inf_velocity(tmp_path):
    frames = make_log(5)
    frames[4]["ego_dynamic_state"] = [np.inf, 0, 0, 0]
    err = _error(tmp_path, frames)
    assert (err.frame, err.field) == (4, "ego_dynamic_state")


@pytest.mark.parametrize("bad_ts", [lambda ts: ts, lambda ts: ts - 1])
def test_non_monotonic_timestamp(tmp_path, bad_ts):
    frames = make_log(5)
    frames[3]["timestamp"] = bad_ts(frames[2]["timestamp"])
    err = _error(tmp_path, frames)
    assert (err.frame, err.field) == (3, "timestamp")


@pytest.mark.parametrize("key", ["token", "timestamp", "roadblock_ids", "cams", "driving_command", "lidar2global"])
def test_missing_key(tmp_path, key):
    frames = make_log(4)
    del frames[1][key]
    err = _error(tmp_path, frames)
    assert (err.frame, err.field, err.reason) == (1, key, "missing key")
    assert f"frame 1: field '{key}'" in str(err)


def test_repeated_frame_token(tmp_path):
    frames = make_log(5)
    frames[4]["token"] = frames[1]["token"]
    err = _error(tmp_path, frames)
    assert (err.frame, err.field) == (4, "token")


def test_missing_nested_keys(tmp_path):
    frames = make_log(4)
    del frames[2]["cams"]["CAM_L1"]["cam_intrinsic"]
    assert _error(tmp_path, frames).field == "cams.CAM_L1.cam_intrinsic"
    frames = make_log(4)
    del frames[0]["anns"]["track_tokens"]
    assert _error(tmp_path, frames).field == "anns.track_tokens"


def test_annotations_optional_unless_required(tmp_path):
    frames = make_log(4)
    for f in frames:
        del f["anns"]
    path = write_log(tmp_path, "mini", "hidden", frames)
    assert read_log(path)[0].annotations.boxes.shape == (0, 7)
    err = _error(tmp_path, frames, require_annotations=True)
    assert (err.frame, err.field) == (0, "anns")


def test_bad_shapes_and_values(tmp_path):
    frames = make_log(4)
    frames[1]["anns"]["gt_boxes"] = np.zeros((2, 6))
    assert _error(tmp_path, frames).field == "anns.gt_boxes"
    frames = make_log(4)
    frames[1]["anns"]["gt_names"] = ["vehicle", "dragon"]
    assert _error(tmp_path, frames).field == "anns.gt_names"
    frames = make_log(4)
    frames[0]["driving_command"] = [0, 2, 0, 0]
    assert _error(tmp_path, frames).field == "driving_command"
    frames = make_log(4)
    frames[3]["map_location"] = "boston"
    assert (_error(tmp_path, frames).frame, _error(tmp_path, frames).field) == (3, "map_location")


def test_values_of_the_wrong_kind(tmp_path):
    frames = make_log(4)
    frames[2]["anns"]["gt_boxes"] = 5  # not a sequence at all
    err = _error(tmp_path, frames)
    assert err.frame == 2 and err.field in ("anns.gt_boxes", "<frame>")
    frames = make_log(4)
    frames[1]["traffic_lights"] = [("x", True, 3)]
    assert _error(tmp_path, frames).field == "traffic_lights"
    frames = make_log(4)
    frames[1]["roadblock_ids"] = [1.5]
    assert _error(tmp_path, frames).field == "roadblock_ids"


def test_empty_route_frame_is_read(tmp_path):
    path = write_log(tmp_path, "mini", "noroute", make_log(5, empty_route_at=(2,)))
    frames = read_log(path)
    assert frames[2].roadblock_ids == [] and frames[1].roadblock_ids == ["1", "2"]


def test_camera_subset(tmp_path):
    frames = make_log(4)
    for f in frames:
        f["cams"] = {"CAM_F0": f["cams"]["CAM_F0"]}
    path = write_log(tmp_path, "mini", "front-only", frames)
    assert list(read_log(path, required_cameras=["CAM_F0"])[0].cameras) == ["CAM_F0"]
    err = _error(tmp_path, frames)  # the default requires all eight cameras
    assert (err.frame, err.field) == (0, "cams.CAM_L0")
    frames[1]["cams"]["CAM_X9"] = frames[1]["cams"]["CAM_F0"]
    assert _error(tmp_path, frames, required_cameras=["CAM_F0"]).field == "cams"
