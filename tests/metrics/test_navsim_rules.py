"""Known answers for rules where NAVSIM's own scorer (v1.1 and v2) decides the number; the expected values
are worked out in the comments from the rules written down in docs/navsim-rules.md. Each case is scored by
both the fast scorer and the plain reference scorer."""

import numpy as np
import pytest

from tests.metrics import toy_scenes as T
from drivefine_core.metrics.reference_scorer import reference_score
from drivefine_core.metrics.scorer import score_trajectories

TT = np.arange(1, 9) * 0.5


def straight(v: float, y: float = 0.0) -> np.ndarray:
    return np.stack([v * TT, np.full(8, y), np.zeros(8)], -1)


def both_scorers(cache, plan) -> list[dict[str, float]]:
    fast = score_trajectories([cache], plan[None, None], "both", human_filter=False)
    fast = {k: float(v[0, 0]) for k, v in fast.items()}
    plain = {**reference_score(cache, plan, "v1"), **reference_score(cache, plan, "v2", human_filter=False)}
    return [fast, plain]


def test_ttc_still_sees_a_track_that_touched_the_ego():
    # Ego: rear axle at x = 0, 10 m/s straight along its lane (y = 0); its box spans rear axle -1.127 .. +4.049.
    # A car (4.5 m long, centre x = -20, same lane) comes from behind at 20 m/s.
    #
    # NC: the boxes first touch when the car's front reaches the ego's rear:
    #   -20 + 20 t + 2.25 >= 10 t - 1.127  ->  t >= 1.6623 s, i.e. step 17 (t = 1.7 s).
    #   There the car's centre (x = 14) is behind the ego's rear axle (x = 17): angle 180 deg > 150 deg,
    #   not at fault -> NC = 1 (NC adds the track to *its* set of collided tracks).
    # TTC keeps its own set, empty at the start, so the track is still tested. The ego box moved ahead by
    #   10 m/s * L meets the car at t + L when
    #   -20 + 20 (t + L) + 2.25 >= 10 t + 10 L - 1.127  ->  t + L >= 1.6623 s.
    #   Visiting steps t = 0, 0.1, ... and look-aheads L = 0, 0.3, 0.6, 0.9 in that order, the first hit is
    #   t = 0.8 s, L = 0.9 s (t + L = 1.7). The car's centre then (x = -20 + 20 * 1.7 = 14) is ahead of the
    #   ego's rear axle at t (x = 8): angle 0 < 30 deg -> TTC = 0, in v1 and in v2 (step 8 <= 31).
    #   (Dropping the tracks NC touched, as this project once did, would give TTC = 1.)
    # v1 PDMS = NC * DAC * (5 TTC + 5 EP + 2 C) / 12 = (0 + 5 * 1 + 2 * 1) / 12 = 7 / 12: the plan drives
    # exactly the reference's 10 m/s, so EP = 1, and it is comfortable.
    cache = T.straight_road([T.ToyAgent(-20.0, 0.0, speed=20.0)], ego_speed=10.0)
    for r in both_scorers(cache, straight(10.0)):
        assert r["v1/nc"] == 1.0 and r["v2/nc"] == 1.0
        assert r["v1/ttc"] == 0.0 and r["v2/ttc"] == 0.0
        assert r["v1/ep"] == pytest.approx(1.0) and r["v1/c"] == 1.0
        assert r["v1/pdms"] == pytest.approx(7 / 12, abs=1e-6)


def test_ddc_exempts_intersections_in_v2_only():
    # The toy junction: the ego road runs along y = 0, the intersection polygon is x in [40, 60], |y| <= 10.
    # The route here misses the junction's straight connector (lane_on_route False for it), so inside the
    # junction the ego centre lies on no on-route lane or connector: it is "oncoming" there.
    # Ego at 15 m/s straight: centre x(t) = 1.461 + 15 t at the simulated steps t = 0.1 k, k = 0..40.
    # The centre is strictly inside the junction (40 < x < 60) for k = 26 (x = 40.461) .. 39 (x = 59.961):
    # 14 steps, each adding |delta centre| = 1.5 m of oncoming progress.
    # DDC sums oncoming progress over 1 s windows (11 steps) and takes the worst window:
    #   v1.1 counts every oncoming step: 11 * 1.5 = 16.5 m >= 6 m -> DDC = 0.
    #   v2 drops oncoming steps whose centre is in an intersection: 0 m < 2 m -> DDC = 1.
    # v1 PDMS does not weigh DDC (weight 0 in v1.1), so it stays 1; v2 EPDMS = 1 (DDC is a multiplier there).
    cache = T.intersection(ego_speed=15.0, red_from_step=None)
    cache.lane_on_route = np.array([lid != "lc_straight" and on for lid, on in zip(cache.lane_ids, cache.lane_on_route)])
    for r in both_scorers(cache, straight(15.0)):
        assert r["v1/ddc"] == 0.0
        assert r["v2/ddc"] == 1.0
        assert r["v1/pdms"] == pytest.approx(1.0, abs=1e-6)
        assert r["v2/epdms"] == pytest.approx(1.0, abs=1e-6)


def test_velocity_fit_uses_navsim_batch_regulariser():
    """NAVSIM v1.1's batch LQR (simulation/batch_lqr_utils.py) fits x = [v0, a_0 .. a_{n-2}] to the
    displacements with `_make_banded_difference_matrix(n - 2)`, which sets the +1 band and then overwrites
    it with the -1 band: every row but the last is -a_i alone, the last a_{n-2} - a_{n-3}. For 5
    displacements (v0 column first):
        [0 -1  0  0  0]
        [0  0 -1  0  0]
        [0  0  0 -1  1]
    So it penalises 1e-4 * sum a_i^2 rather than the jerk. On x(t) = 5 t + t^2 sampled every 0.1 s (41 poses,
    d_k = 0.1 v_k + 0.01 exactly, i.e. v_k = 5.1 + 0.2 k with zero jerk) a true jerk penalty returns
    5.1, 5.3, 5.5 exactly; NAVSIM's rows pull the accelerations down and return 5.2236068, 5.3472136,
    5.5180340 (printed by NAVSIM v1.1's get_velocity_curvature_profiles_with_derivatives_from_poses(0.1,
    poses, 1e-4, 1e-2) on these poses)."""
    from drivefine_core.metrics.reference_simulator import fit_profiles
    from drivefine_core.metrics.simulator import fit_velocity_curvature, jerk_rows

    np.testing.assert_array_equal(jerk_rows(5), [[0, -1, 0, 0, 0], [0, 0, -1, 0, 0], [0, 0, 0, -1, 1]])
    t = np.arange(41) * 0.1
    poses = np.stack([5 * t + t**2, np.zeros(41), np.zeros(41)], -1)
    fast = fit_velocity_curvature(poses[None])[0][0]
    plain = fit_profiles(poses)[0]
    for v in (fast, plain):
        np.testing.assert_allclose(v[:3], [5.2236068, 5.3472136, 5.5180340], atol=1e-6)
