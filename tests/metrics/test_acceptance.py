"""Hand-made scenes with known answers."""

import numpy as np
import pytest

from tests.metrics import toy_scenes as T
from drivefine_core.metrics.geometry import ego_center
from drivefine_core.metrics.scorer import score_trajectories, simulate_rows

TT = np.arange(1, 9) * 0.5


def straight(v: float, y: float = 0.0) -> np.ndarray:
    return np.stack([v * TT, np.full(8, y), np.zeros(8)], -1)


def score(cache, plan, version="both", **kw):
    out = score_trajectories([cache], plan[None, None], version, **kw)
    return {k: float(v[0, 0]) for k, v in out.items()}


def test_clean_drive_scores_one():
    r = score(T.straight_road(ego_speed=10.0), straight(10.0))
    assert r["v1/pdms"] == pytest.approx(1.0, abs=1e-9)
    assert r["v2/epdms"] == pytest.approx(1.0, abs=1e-9)
    assert all(r[f"v1/{k}"] == 1.0 for k in ("nc", "dac", "ddc", "ttc", "c"))


def test_leaving_the_road_fails_dac():
    plan = straight(10.0)
    plan[:, 1] = -9.0 * np.clip(TT / 2, 0, 1)  # beyond the oncoming lane's outer edge at y = -5.4
    r = score(T.straight_road(ego_speed=10.0), plan)
    assert r["v1/dac"] == 0.0 and r["v1/pdms"] == 0.0
    assert r["v2/dac"] == 0.0 and r["v2/epdms"] == 0.0


def test_rear_ending_a_stopped_car():
    cache = T.straight_road([T.ToyAgent(25.0, 0.0)], ego_speed=10.0)
    cache.human_future = straight(2.0)  # the human stopped behind it: no human filter on NC
    r = score(cache, straight(10.0))
    assert r["v1/nc"] == 0.0 and r["v1/pdms"] == 0.0
    assert r["v2/nc"] == 0.0 and r["v2/epdms"] == 0.0


def test_hit_from_behind_while_stopped_is_not_at_fault():
    cache = T.straight_road([T.ToyAgent(-14.0, 0.0, 0.0, 8.0)], ego_speed=0.0)
    r = score(cache, np.zeros((8, 3)))
    assert r["v1/nc"] == 1.0 and r["v2/nc"] == 1.0
    assert r["v1/ttc"] == 1.0


def test_static_object_hit_halves_nc():
    cache = T.straight_road([T.ToyAgent(25.0, 0.0, name="traffic_cone", length=0.5, width=0.5)], ego_speed=10.0)
    cache.human_future = straight(2.0)
    r = score(cache, straight(10.0))
    assert r["v1/nc"] == 0.5 and r["v2/nc"] == 0.5
    assert r["v1/pdms"] == pytest.approx(0.5 * (5 * r["v1/ttc"] + 5 * r["v1/ep"] + 2 * r["v1/c"]) / 12)


def test_jerky_plan_is_uncomfortable():
    speeds = np.array([12.0, 0.0, 12.0, 0.0, 12.0, 0.0, 12.0, 0.0])
    plan = straight(0.0)
    plan[:, 0] = np.cumsum(speeds * 0.5)
    r = score(T.straight_road(ego_speed=6.0), plan)
    assert r["v1/c"] == 0.0 and r["v2/hc"] == 0.0
    assert r["v1/nc"] == 1.0 and r["v1/dac"] == 1.0


def test_slow_plan_gets_the_progress_fraction():
    cache = T.straight_road(ego_speed=10.0)
    plans = np.stack([straight(5.0)])[None]
    states, _ = simulate_rows([cache], plans)
    centers = ego_center(states[0])  # rows: reference, plan, human; centreline is the x axis
    expected = (centers[1, -1, 0] - centers[1, 0, 0]) / (centers[0, -1, 0] - centers[0, 0, 0])
    r = score(cache, straight(5.0))
    assert 0.4 < expected < 0.7
    assert r["v1/ep"] == pytest.approx(expected, abs=1e-9)
    assert r["v2/ep"] == pytest.approx(expected, abs=1e-9)


def test_running_a_red_light_fails_tlc_only_in_v2():
    stop_line = np.stack([np.minimum(10.0 * TT, 30.0), np.zeros(8), np.zeros(8)], -1)
    red = T.intersection(ego_speed=10.0, red_from_step=0)
    red.human_future = stop_line  # the human stopped: no filter
    r = score(red, straight(10.0))
    assert r["v2/tlc"] == 0.0 and r["v2/epdms"] == 0.0
    assert r["v1/pdms"] > 0.9  # v1 has no traffic-light metric
    green = T.intersection(ego_speed=10.0, red_from_step=None)
    assert score(green, straight(10.0))["v2/tlc"] == 1.0
    assert score(red, stop_line)["v2/tlc"] == 1.0


def test_drifting_off_the_centerline_fails_lk():
    cache = T.straight_road(ego_speed=10.0)
    assert score(cache, straight(10.0, 1.0))["v2/lk"] == 0.0
    assert score(cache, straight(10.0, 0.3))["v2/lk"] == 1.0
    brief = straight(10.0)
    brief[2:4, 1] = 1.2  # off by > 0.5 m for well under 2 s
    assert score(cache, brief)["v2/lk"] == 1.0


def test_agent_overlapping_ego_at_start_is_removed_in_v2_only():
    cache = T.straight_road([T.ToyAgent(2.0, 0.5)], ego_speed=10.0)
    r = score(cache, straight(10.0), human_filter=False)
    assert r["v1/nc"] == 0.0
    assert r["v2/nc"] == 1.0


def test_human_filter_forgives_what_the_human_also_fails():
    cache = T.straight_road([T.ToyAgent(25.0, 0.0)], ego_speed=10.0)  # the human drives into the parked car
    assert score(cache, straight(10.0))["v2/nc"] == 1.0
    assert score(cache, straight(10.0), human_filter=False)["v2/nc"] == 0.0


def test_extended_comfort_uses_the_previous_plan_of_the_log():
    a = T.straight_road(ego_speed=10.0, token="a", log_name="L", timestamp_us=0)
    b = T.straight_road(ego_speed=10.0, token="b", log_name="L", timestamp_us=500_000)
    smooth = np.stack([straight(10.0), straight(10.0)])[:, None]
    out = score_trajectories([a, b], smooth, "v2")
    assert np.isnan(out["v2/ec"][0, 0]) and out["v2/ec"][1, 0] == 1.0
    jumpy = np.stack([straight(10.0), straight(2.0)])[:, None]
    out = score_trajectories([a, b], jumpy, "v2")
    assert out["v2/ec"][1, 0] == 0.0
    assert out["v2/epdms"][1, 0] < out["v2/epdms"][0, 0]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="trajectories"):
        score_trajectories([T.straight_road()], np.zeros((1, 1, 7, 3)))
    with pytest.raises(ValueError, match="version"):
        score_trajectories([T.straight_road()], np.zeros((1, 1, 8, 3)), "v3")


def test_reassigning_a_field_after_scoring_is_not_served_stale():
    cache = T.straight_road(ego_speed=10.0)
    first = score(cache, straight(10.0))
    cache.human_future = straight(10.0, -9.0)  # the human now leaves the road: DAC is forgiven in v2
    plan = straight(10.0)
    plan[:, 1] = -9.0 * np.clip(TT / 2, 0, 1)
    assert score(cache, plan)["v2/dac"] == 1.0
    cache.agent_boxes, cache.agent_valid = T.straight_road([T.ToyAgent(25.0, 0.0)]).agent_boxes, T.straight_road([T.ToyAgent(25.0, 0.0)]).agent_valid
    cache.agent_velocity, cache.agent_names, cache.agent_tokens = np.zeros((1, 51, 2)), ["vehicle"], ["t"]
    assert score(cache, straight(10.0))["v1/nc"] == 0.0 and first["v1/nc"] == 1.0
