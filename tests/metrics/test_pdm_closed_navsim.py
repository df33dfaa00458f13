"""PDM-Closed known answers from NAVSIM v1.1's rules (docs/navsim-rules.md, PDM-Closed section).

Scene: the toy junction (ego road along +x, centreline from the ego at x = 0 to x = 160, junction at
x in [40, 60], speed limit 15 m/s), ego at 10 m/s, a slow car ahead in the ego lane: centre x = 30, 4.5 m long,
2 m wide, 2 m/s along +x. Constants: a_max 1.5, b 3 (clip [-3, 1.5]), min gap 1 m, headway 1.5 s, exponent 10,
2 sqrt(a_max b) = 4.2426; ego front = rear axle + 4.049 m."""

import numpy as np
import pytest

from drivefine_core.metrics import pdm_closed as P
from tests.metrics.toy_scenes import ToyAgent, intersection, straight_road


def _hand_progress(fraction: float, steps: int = 50) -> np.ndarray:
    """The IDM of one centre-line proposal behind the slow car, from the rules alone (1-D, no geometry code):
    the leading car is refreshed on even steps t from the forecast sample of time t * 0.1 s (car rear at
    27.75 + 2 t 0.1), gap = car rear - ego front at the previous progress, lead progress = previous progress +
    gap, lead speed 2, rear length 0; odd steps keep the previous lead and step 1 keeps the zero row."""
    target = 15.0 * fraction
    s, v, lead_s, lead_v = 0.0, 10.0, 0.0, 0.0
    out = [s]
    for t in range(1, steps + 1):
        if t % 2 == 0:
            lead_s, lead_v = s + max(27.75 + 2.0 * t * 0.1 - (s + 4.049), 0.0), 2.0
        s_star = 1.0 + 1.5 * v + v * (v - lead_v) / (2 * np.sqrt(4.5))
        s_alpha = max(lead_s - s, 1.0)
        a = float(np.clip(1.5 * (1 - (v / target) ** 10 - (s_star / s_alpha) ** 2), -3.0, 1.5))
        s, v = s + 0.1 * v, v + 0.1 * a  # explicit Euler: progress with the old speed
        out.append(s)
    return np.array(out)


@pytest.fixture(scope="module")
def slow_leader():
    cache = intersection([ToyAgent(30.0, 0.0, 0.0, 2.0)], ego_speed=10.0, red_from_step=None)
    return cache, P.pdm_closed_details(cache)


def test_first_steps_by_hand(slow_leader):
    _, d = slow_leader
    # Proposal 3 = centre line, 0.8 x 15 = 12 m/s target.
    # Step 1 (odd) reuses the zero-initialised lead row: s_alpha = max(0 - 0 - 0, 1) = 1 m,
    #   s* = 1 + 1.5*10 + 10*10/4.2426 = 39.57 m -> a = 1.5 (1 - (10/12)^10 - 39.57^2) << -3 -> -3:
    #   progress 0 + 0.1*10 = 1.0 m (old speed), speed 10 - 0.3 = 9.7 m/s.
    assert d["lead"][3, 1] == pytest.approx([0.0, 0.0, 0.0])
    assert d["progress"][3, 1] == pytest.approx(1.0, abs=1e-12) and d["speed"][3, 1] == pytest.approx(9.7, abs=1e-12)
    # Step 2 (even): forecast sample 0.2 s, car rear 30 - 2.25 + 0.4 = 28.15; ego front 1.0 + 4.049 = 5.049;
    #   polygon gap 23.101 -> lead progress 24.101, speed 2 * cos(0) = 2, rear length 0.
    #   s* = 1 + 14.55 + 9.7*7.7/4.2426 = 33.155; (33.155/23.101)^2 = 2.0598; (9.7/12)^10 = 0.1191
    #   a = 1.5 (1 - 0.1191 - 2.0598) = -1.7684 -> speed 9.5232, progress 1.0 + 0.97 = 1.97.
    assert d["lead"][3, 2] == pytest.approx([24.101, 2.0, 0.0], abs=1e-9)
    assert d["speed"][3, 2] == pytest.approx(9.5232, abs=1e-4) and d["progress"][3, 2] == pytest.approx(1.97, abs=1e-12)
    # Step 3 (odd) keeps the step-2 lead: s_alpha = 24.101 - 1.97 = 22.131, s* = 32.172, ratio^2 = 2.1132,
    #   (9.5232/12)^10 = 0.0991, a = -1.8185 -> speed 9.3413.
    assert d["lead"][3, 3] == pytest.approx(d["lead"][3, 2])
    assert d["speed"][3, 3] == pytest.approx(9.3413, abs=1e-4)
    # Every proposal brakes at -3 on step 1, whatever its target (the leading-car row is zero).
    assert np.allclose(d["speed"][:15, 1], 9.7)


def test_progress_matches_the_rules_and_the_chosen_proposal(slow_leader):
    cache, d = slow_leader
    for j, fraction in enumerate((0.2, 0.4, 0.6, 0.8, 1.0)):
        assert np.allclose(d["progress"][j, :41], _hand_progress(fraction)[:41], atol=1e-9)
    # 4 s progress of the centre proposals (hand loop): 20.409, 24.322, 25.694, 26.004, 26.030 m.
    assert d["progress"][:5, 40] == pytest.approx([20.4087, 24.3220, 25.6938, 26.0044, 26.0298], abs=1e-4)
    # The +1 m path leaves the drivable area (this junction's road ends at y = 1.8), the -1 m path ties the
    # centre one at best; the LQR-tracked 0.8 proposal gets 0.01 m more progress than the 1.0 one, so
    # proposal 3 wins (the first of equal scores would be kept).
    assert d["chosen"] == 3
    assert np.all(d["pdms"][10:] == 0.0)
    ref = P.pdm_closed(cache)
    # Only the chosen one is unrolled on to 50 steps, by the same rules: 29.099 m at 5 s.
    # Row 0 is the rear axle's projection on the path, interpolated at progress clipped to >= 1e-5 m.
    assert ref[0, 0] == pytest.approx(1e-5, abs=1e-12)
    assert np.allclose(ref[1:, 0], _hand_progress(0.8)[1:], atol=1e-9) and np.allclose(ref[:, 1:], 0.0)
    assert ref[40, 0] == pytest.approx(26.0044, abs=1e-4) and ref[50, 0] == pytest.approx(29.0990, abs=1e-4)


def test_red_light_is_an_obstacle_only_when_red_at_t0():
    red = P.pdm_closed_details(intersection([], ego_speed=10.0, red_from_step=0))
    # Lead at step 2 = the red connector's polygon (x from 40): progress 1.0 + (40 - 5.049), speed 0.
    assert red["lead"][4, 2] == pytest.approx([1.0 + 40 - 5.049, 0.0, 0.0], abs=1e-9)
    later = P.pdm_closed_details(intersection([], ego_speed=10.0, red_from_step=5))
    # Red only from 0.5 s: PDM-Closed sees the t = 0 state (green) and drives to the path end, which leads
    # with progress = path length 160 and rear length = half the ego length 2.588.
    assert later["lead"][4, 2] == pytest.approx([160.0, 0.0, 5.176 / 2], abs=1e-9)
    assert later["progress"][4, 40] > red["progress"][4, 40] + 5.0


def test_forecast_moves_along_heading_every_0_2_s_within_100_m():
    agents = [ToyAgent(20.0, 3.6, 0.0, 5.0),  # drives forward at 5 m/s
              ToyAgent(30.0, 3.6, np.pi, 0.0, name="vehicle"),  # placeholder, velocity set below
              ToyAgent(-110.0, 3.6, 0.0, 5.0),  # 111.5 m from the ego centre: not observed
              ToyAgent(2.0, 0.0, 0.0, 0.0, name="czone_sign")]  # overlaps the ego at t = 0
    cache = straight_road(agents, ego_speed=5.0)
    vel = cache.agent_velocity.copy()
    vel[1] = [3.0, 0.0]  # box heading pi, moving +x: reversing; forecast speed 3 along heading pi + pi
    cache.agent_velocity = vel
    fc = P.Forecast(cache)
    out = fc.cache
    assert out.agent_tokens == ["track0", "track1"]  # far one dropped, touched one dropped from the scoring
    assert fc.collided.tolist() == [False, False, True]  # kept: two cars, then the sign (far car gone)
    # Positions hold for 2 steps: step 3 shows the 0.2 s sample.
    assert out.agent_boxes[0, [0, 1, 2, 3, 4], 0] == pytest.approx([20.0, 20.0, 21.0, 21.0, 22.0])
    assert out.agent_boxes[1, [2, 3, 50], 0] == pytest.approx([30.6, 30.6, 45.0])
    assert out.agent_boxes[1, 50, 2] == pytest.approx(np.pi)


def test_lane_joint_keeps_both_lanes_headings():
    """NAVSIM concatenates the lanes' discrete paths; nuplan-devkit's compute_linestring_heading gives each
    lane's vertices the heading to the next vertex and its last vertex the heading before it. Lane A
    (0,0)->(10,0) heads 0 at both vertices, lane B (10,0)->(10,10) heads pi/2 at both: the path is
    [(0,0,0), (10,0,0), (10,0,pi/2), (10,10,pi/2)]. Halfway along A the heading is therefore 0 (interpolated
    between A's two vertices), not pi/4 (what de-duplicating the joint and pointing it at B gave); on B it is
    pi/2. The +1 m (left) offset moves each vertex along its own normal, so the joint opens into a
    sqrt(2) m segment from (10, 1) to (9, 0): length 10 + sqrt(2) + 10."""
    path = P.PDMPath.from_polyline(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 10.0]]))
    np.testing.assert_allclose(path.heading, [0.0, 0.0, np.pi / 2, np.pi / 2])
    np.testing.assert_allclose(path.interpolate(5.0), [5.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(path.interpolate(9.9), [9.9, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(path.interpolate(15.0), [10.0, 5.0, np.pi / 2], atol=1e-12)
    left = path.parallel(1.0)
    np.testing.assert_allclose(left.xy, [[0, 1], [10, 1], [9, 0], [9, 10]], atol=1e-12)
    assert left.length == pytest.approx(20 + np.sqrt(2))


def test_forecast_sees_only_tracks_detected_in_the_current_frame():
    """NAVSIM's PDM-Closed plans on `scenario.initial_tracked_objects`, the current frame's detections. A track
    seen in one later frame only is held at that detection from t = 0 on for scoring (agent_valid everywhere),
    but the planner cannot observe it: with `agent_seen_at_start` False the stopped car 20 m ahead is not in
    the forecast and PDM-Closed drives exactly as on the empty road; seen at the start, it brakes for it."""
    empty = P.pdm_closed(straight_road([], ego_speed=10.0))
    late = straight_road([ToyAgent(20.0, 0.0)], ego_speed=10.0)
    late.agent_seen_at_start = np.array([False])
    assert len(P.Forecast(late).polygons[0]) == 0
    np.testing.assert_allclose(P.pdm_closed(late), empty, atol=1e-12)
    now = straight_road([ToyAgent(20.0, 0.0)], ego_speed=10.0)
    now.agent_seen_at_start = np.array([True])
    assert len(P.Forecast(now).polygons[0]) == 1
    assert P.pdm_closed(now)[40, 0] < empty[40, 0] - 5.0
