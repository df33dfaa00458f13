"""Reactive IDM vehicles (NAVSIM v2's navsim_IDM_traffic_agents, docs/navsim-rules.md): known answers on
hand-made scenes, worked out from the IDM formula with the default rules (v0 = 10 m/s, s0 = 1 m, T = 1.5 s,
a = 1.0 m/s^2, b = 2.0 m/s^2, exponent 4, explicit Euler at 0.1 s, acceleration clipped to [-b, a])."""

import math

import numpy as np
import pytest

from tests.metrics import toy_scenes as T
from drivefine_core.metrics.reactive_agents import Placement, idm_acceleration, reactive_cache, simulate_reactive
from drivefine_core.metrics.params import ReactiveAgentsParams
from drivefine_core.metrics.reactive_scoring import score_reactive
from drivefine_core.metrics.scorer import score_trajectories

STOPPED_EGO = np.zeros((41, 11))  # simulator states: the ego stays at the origin, speed 0
EGO_REAR = -1.127  # x of the ego's rear bumper (rear axle at 0)


def _speed(result, row):
    return np.linalg.norm(result.velocity[row], axis=1)


def test_free_vehicle_accelerates_toward_the_target_speed_by_the_idm_formula():
    # A 4.5 m car at x = 0 on the lane y = 3.6 (a 1000 m straight centreline), 5 m/s, nothing ahead.
    # Free road: the path end is a stopped leader 1000 m ahead, gap s = 1000 - 4.5 / 2 = 997.75.
    # s* = 1 + 5 * 1.5 + 5 * 5 / (2 sqrt(1 * 2)) = 8.5 + 8.838835 = 17.338835
    # acc = 1 * (1 - (5 / 10)^4 - (17.338835 / 997.75)^2) = 1 - 0.0625 - 0.000302 = 0.937198
    # step 1: x = 0 + 0.1 * 5 = 0.5 (old speed), v = 5 + 0.1 * 0.937198 = 5.0937198
    c = T.straight_road([T.ToyAgent(0.0, 3.6, speed=5.0)], ego_speed=0.0)
    r = simulate_reactive(c, STOPPED_EGO, {0: Placement(np.array([[0.0, 3.6], [1000.0, 3.6]]))})
    v = _speed(r, 0)
    assert v[1] == pytest.approx(5.0937198, abs=1e-6)
    assert r.boxes[0, 1, 0] == pytest.approx(0.5, abs=1e-9)
    # step 2: x = 0.5 + 0.1 * 5.0937198 = 1.00937198
    assert r.boxes[0, 2, 0] == pytest.approx(1.00937198, abs=1e-8)
    # It keeps accelerating, ever more gently, and never reaches 10 m/s within 4 s (a <= 1 m/s^2).
    assert np.all(np.diff(v[:41]) > 0) and np.all(np.diff(v[:41], 2) < 1e-12) and v[40] < 10.0
    assert r.simulated[0] and np.allclose(r.boxes[0, :41, 1], 3.6)


def test_follower_behind_a_stopped_ego_brakes_and_keeps_the_min_gap():
    # A 4.5 m car at x = -14 behind the stopped ego, 6 m/s, same lane. Its front is at -11.75, the ego's rear
    # at -1.127: gap 10.623. s* = 1 + 6 * 1.5 + 36 / (2 sqrt 2) = 10 + 12.727922 = 22.727922;
    # acc = 1 - 0.6^4 - (22.727922 / 10.623)^2 = 1 - 0.1296 - 4.5773 = -3.707 -> clipped to -b = -2.
    # So it brakes at 2 m/s^2: 6 -> 5.8 after one step, 4.0 after 1 s, 2.0 after 2 s.
    c = T.straight_road([T.ToyAgent(-14.0, 0.0, speed=6.0)], ego_speed=0.0)
    r = simulate_reactive(c, STOPPED_EGO, {0: Placement(np.array([[-100.0, 0.0], [200.0, 0.0]]))})
    v = _speed(r, 0)
    assert idm_acceleration(6.0, 10.623, 0.0, 0.0, 10.0, ReactiveAgentsParams()) == -2.0
    assert v[1] == pytest.approx(5.8) and v[10] == pytest.approx(4.0) and v[20] == pytest.approx(2.0)
    gap = EGO_REAR - (r.boxes[0, :41, 0] + 2.25)
    assert gap[1] == pytest.approx(10.623 - 0.6)  # explicit Euler: moved with the old speed, 0.1 * 6
    # Never closer than s0 = 1 m; nearly stopped at 4 s, just outside the min gap.
    assert gap.min() >= 1.0 and 1.0 <= gap[40] < 1.5 and v[40] < 0.1
    # At rest exactly s0 behind a stopped leader the IDM holds: 1 - 0 - (1 / 1)^2 = 0.
    assert idm_acceleration(0.0, 1.0, 0.0, 0.0, 10.0, ReactiveAgentsParams()) == 0.0


def test_non_vehicles_replayed_unplaced_vehicles_held_or_dropped():
    agents = [T.ToyAgent(10.0, -3.6, speed=1.0, name="pedestrian"),  # replayed
              T.ToyAgent(30.0, 8.0),  # stopped, off the lanes: held where it is
              T.ToyAgent(30.0, -3.6, speed=3.0),  # moving, no lane found: dropped (NAVSIM)
              T.ToyAgent(-40.0, 3.6, speed=2.0, first_step=5)]  # not there now: never part of the world
    c = T.straight_road(agents, ego_speed=0.0)
    r = simulate_reactive(c, STOPPED_EGO, {1: Placement(None, in_lane=False), 2: Placement(None, in_lane=True)})
    np.testing.assert_array_equal(r.boxes[0], c.agent_boxes[0])
    assert r.held[1] and r.valid[1].all() and np.allclose(r.boxes[1, :, :2], [30.0, 8.0])
    assert not r.valid[2].any() and not r.valid[3].any()
    world = reactive_cache(c, r)
    assert world.agent_tokens == ["track0", "track1"] and world.agent_boxes.shape == (2, 51, 5)


def test_scored_against_reactive_vehicles_a_slow_leader_speeds_up_instead_of_being_hit():
    # Ego at 8 m/s drives straight on (constant velocity); a car 20 m ahead goes 4 m/s. Log replay: the gap
    # between the ego's front (4.049) and the car's rear (17.75), 13.7 m, closes at 4 m/s -> hit after ~3.4 s
    # (NC 0). Reactive: the free car accelerates at up to 1 m/s^2, so at most 4 * 4 - 4^2 / 2 = 8 m close
    # in 4 s: no collision (NC 1).
    c = T.straight_road([T.ToyAgent(20.0, 0.0, speed=4.0)], ego_speed=8.0)
    plan = np.zeros((1, 8, 3))
    plan[0, :, 0] = np.arange(1, 9) * 0.5 * 8.0
    lane = np.array([[-100.0, 0.0], [1000.0, 0.0]])
    # (The toy's logged human drives the same plan: no human filter, or it would forgive the crash.)
    reactive = score_reactive([c], plan, lambda cache: (lambda cc, rows: {0: Placement(lane)}), human_filter=False)
    replay = score_trajectories([c], plan[:, None], "v2", extended_comfort_pairs=False, human_filter=False)
    assert replay["v2/nc"][0, 0] == 0.0 and replay["v2/epdms"][0, 0] == 0.0
    assert reactive["v2/nc"][0] == 1.0 and reactive["v2/epdms"][0] > 0.5
    assert math.isnan(reactive["v2/ec"][0])  # no EC pair given: its weight is dropped
