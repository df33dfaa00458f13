"""build_metric_cache on a small hand-made RoadNetwork + Scene, and Parquet round trips."""

import os

import numpy as np
import pytest
from shapely.geometry import LineString, Point

from drivefine_core.data.map_api import MapAPI
from drivefine_core.data.road_network import Intersection, Lane, LaneConnector, RoadNetwork, Roadblock, RoadblockConnector
from drivefine_core.data.schema import Annotations, EgoStatus, Frame, Scene
from tests.metrics import toy_scenes as T
from tests.metrics.cache_compare import assert_same_cache
from drivefine_core.metrics.cache_builder import build_metric_cache
from drivefine_core.metrics.cache_io import read_metric_caches, write_metric_caches
from drivefine_core.metrics.scorer import score_trajectories

ORIGIN = np.array([1000.0, 2000.0])
THETA = np.deg2rad(30.0)
U = np.array([np.cos(THETA), np.sin(THETA)])
N = np.array([-np.sin(THETA), np.cos(THETA)])


def g(s, d=0.0):
    """Global point at arc length s and lateral offset d along the test road."""
    return ORIGIN + np.outer(np.atleast_1d(s), U) + np.outer(np.atleast_1d(d), N)


def rect(s0, s1, d0, d1):
    return np.concatenate([g([s0, s1], [d0, d0]), g([s1, s0], [d1, d1])])


def network() -> RoadNetwork:
    net = RoadNetwork("test-town", "1", "EPSG:32611")
    line = lambda a, b: g(np.linspace(a, b, 11))  # noqa: E731
    net.lanes["L1"] = Lane("L1", "RB1", 0, line(0, 100), 3.6, 12.0, rect(0, 100, -1.8, 1.8))
    net.lanes["L2"] = Lane("L2", "RB2", 0, line(120, 250), 3.6, 12.0, rect(120, 250, -1.8, 1.8))
    net.lanes["O1"] = Lane("O1", "RB3", 0, g(np.linspace(250, 0, 11), -3.6), 3.6, 12.0, rect(0, 250, -5.4, -1.8))
    net.lane_connectors["C1"] = LaneConnector("C1", "RBC1", "L1", "L2", line(100, 120), 3.6, 12.0, rect(100, 120, -1.8, 1.8),
                                              intersection_id="I1", has_traffic_light=True)
    net.roadblocks["RB1"] = Roadblock("RB1", ["L1"], rect(0, 100, -1.8, 1.8))
    net.roadblocks["RB2"] = Roadblock("RB2", ["L2"], rect(120, 250, -1.8, 1.8))
    net.roadblocks["RB3"] = Roadblock("RB3", ["O1"], rect(0, 250, -5.4, -1.8))
    net.roadblock_connectors["RBC1"] = RoadblockConnector("RBC1", "RB1", "RB2", ["C1"], rect(100, 120, -1.8, 1.8), "I1")
    net.intersections["I1"] = Intersection("I1", rect(100, 120, -8, 8))
    return net


def scene(speed=8.0) -> Scene:
    frames = []
    for k in range(14):
        s_ego = 20 + speed * 0.5 * k
        pose = np.array([*g(s_ego)[0], THETA])
        boxes, names, tokens, vel = [], [], [], []
        car_s = 60 + 5.0 * 0.5 * (k - 3)
        boxes.append([car_s - s_ego, 0.0, 0.0, 4.5, 2.0, 1.5, 0.0]); names.append("vehicle"); tokens.append("car"); vel.append([5.0, 0, 0])  # absolute velocity in the frame's ego axes
        if k == 5:
            boxes.append([45 - s_ego, -1.0, 0.0, 0.5, 0.5, 1.0, 0.0]); names.append("traffic_cone"); tokens.append("cone"); vel.append([0, 0, 0])
        ann = Annotations(np.array(boxes), names, np.array(vel, dtype=float), tokens)
        frames.append(Frame(f"tok{k:02d}", 1_000_000 + 500_000 * k, EgoStatus(pose, np.array([speed, 0.0]), np.zeros(2), np.array([0, 1, 0, 0])),
                            ann, [("C1", True)], ["RB1", "RBC1", "RB2"]))
    return Scene("tok03", "log-a", "test-town", frames)


def test_build_from_scene_and_map():
    sc = scene()
    cache = build_metric_cache(sc, MapAPI(network()))
    # Ego frame: the current pose is the origin and the road runs along +x.
    line = LineString(cache.centerline)
    assert line.distance(Point(0.0, 0.0)) < 1e-6
    ahead = line.interpolate(line.project(Point(0.0, 0.0)) + 5.0)
    assert ahead.x == pytest.approx(5.0) and ahead.y == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(cache.human_future[:, 0], 4.0 * np.arange(1, 9)) and np.allclose(cache.human_future[:, 1:], 0, atol=1e-9)
    car = cache.agent_tokens.index("car")
    assert np.allclose(cache.agent_boxes[car, [0, 5, 10], 0], [28.0, 30.5, 33.0])  # 2 Hz -> 10 Hz, ego-frame of t=0
    assert np.allclose(cache.agent_velocity[car, 0], [5.0, 0.0])  # frame-relative velocity rotated back
    cone = cache.agent_tokens.index("cone")
    assert cache.agent_valid[cone].all() and np.allclose(cache.agent_boxes[cone, :, 0], 45 - 32.0)  # seen once: static
    assert cache.lane_ids[int(cache.light_lane_index[0])] == "C1" and cache.light_red.all()
    assert cache.lane_on_route[cache.lane_ids.index("L1")] and not cache.lane_on_route[cache.lane_ids.index("O1")]
    assert cache.speed_limit == 12.0
    assert np.allclose(cache.past_states[:, 0], 8.0 * (-1.5 + 0.1 * np.arange(14)))
    # PDM-Closed brakes for the car ahead / the red light instead of driving into them.
    assert cache.reference[-1, 0] < 100 - 32 - 4.0
    out = score_trajectories([cache], cache.human_future[None, None], "both")
    assert out["v1/dac"][0, 0] == 1.0


def test_empty_route_is_rejected_with_the_field_name():
    sc = scene()
    sc.frames[3].roadblock_ids = []
    with pytest.raises(ValueError, match="roadblock_ids"):
        build_metric_cache(sc, MapAPI(network()))


def test_parquet_round_trip_and_incremental_logs(tmp_path):
    a1 = T.straight_road([T.ToyAgent(20, 0, 0, 3)], token="a1", log_name="log-a", timestamp_us=0)
    a2 = T.curved_road(token="a2", log_name="log-a", timestamp_us=500_000)
    b1 = T.intersection([T.ToyAgent(50, -20, np.pi / 2, 5, "pedestrian")], token="b1", log_name="log-b")
    files = write_metric_caches([a2, a1, b1], tmp_path)
    assert sorted(f.name for f in files) == ["log-a.parquet", "log-b.parquet"]
    back = read_metric_caches(tmp_path)
    assert [c.token for c in back] == ["a1", "a2", "b1"]
    for x, y in zip([a1, a2, b1], back):
        assert_same_cache(x, y)
    # Rewriting log-b leaves log-a's file untouched; no temp files remain.
    before = os.stat(tmp_path / "log-a.parquet").st_mtime_ns
    write_metric_caches([b1], tmp_path)
    assert os.stat(tmp_path / "log-a.parquet").st_mtime_ns == before
    assert sorted(os.listdir(tmp_path)) == ["log-a.parquet", "log-b.parquet"]
    assert [c.token for c in read_metric_caches(tmp_path, logs=["log-b"])] == ["b1"]
    # Scores are identical after the round trip.
    plans = np.stack([c.human_future for c in back])[:, None]
    s1 = score_trajectories([a1, a2, b1], plans)
    s2 = score_trajectories(back, plans)
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k])


def test_corrupt_file_and_bad_field_errors(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="broken.parquet"):
        read_metric_caches(tmp_path)
    c = T.straight_road()
    c.agent_valid = c.agent_valid[:, :10]
    with pytest.raises(ValueError, match="agent_valid"):
        c.validate("x.parquet")
    with pytest.raises(ValueError, match="not a plain file name"):
        write_metric_caches([T.straight_road(log_name="../evil")], tmp_path)
