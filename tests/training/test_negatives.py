"""Negative mining with the real scorer, recovery trajectories, and the shaped reward."""

from __future__ import annotations

import numpy as np
import pytest

from tests.metrics import toy_scenes as T
from drivefine_core.metrics.geometry import project_to_polyline
from drivefine_core.metrics.scorer import score_trajectories
from drivefine_core.training.negatives import (
    SceneTargets, build_scene_targets, closeness, mine_negatives, recovery_trajectory, shaped_reward,
)

SHIFTS, SPEEDS = [-4.0, -2.5, 2.5, 4.0], [0.0, 1.6, 2.2]


def test_closeness_is_bounded_and_falls_with_distance() -> None:
    ref = np.zeros((8, 3))
    offsets = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    trajs = np.zeros((len(offsets), 8, 3))
    trajs[:, :, 1] = offsets[:, None]
    c = closeness(trajs, ref, sigma=2.0)
    assert c[0] == 1.0 and np.all(np.diff(c) < 0) and np.all(c > 0)
    assert c[1] == pytest.approx(np.exp(-0.25 / 4))


def test_mined_negatives_fail_a_multiplier_and_stay_near_the_human() -> None:
    caches = [T.straight_road([T.ToyAgent(30.0, 0.0, speed=8.0)], ego_speed=8.0, token="lead"),
              T.intersection(ego_speed=8.0, red_from_step=0, token="red"), T.curved_road(token="curve")]
    negs = mine_negatives(caches, SHIFTS, SPEEDS)
    assert all(n is not None for n in negs)
    scores = score_trajectories(caches, np.stack(negs)[:, None], version="both")  # type: ignore[arg-type]
    failed = (scores["v1/nc"] == 0) | (scores["v1/dac"] == 0) | (scores["v2/tlc"] == 0)
    assert failed.all(), {k: v.ravel() for k, v in scores.items() if k.endswith(("nc", "dac", "tlc"))}
    human = score_trajectories(caches, np.stack([c.human_future for c in caches])[:, None], version="v1")
    assert human["v1/pdms"].min() > 0  # the human itself is fine, so the negative is a real contrast
    # with nothing to perturb into failure there is no negative
    assert mine_negatives([T.straight_road()], [], [1.0]) == [None]


def test_recovery_returns_a_perturbed_start_to_the_centreline() -> None:
    cache = T.curved_road(ego_speed=8.0)
    for start in (np.array([0.0, 1.5, 0.0]), np.array([0.0, -1.0, 0.2]), np.zeros(3)):
        rec = recovery_trajectory(cache, start, converge_s=2.0)
        c, s = np.cos(start[2]), np.sin(start[2])  # back to the cache frame
        xy = start[:2] + np.stack([c * rec[:, 0] - s * rec[:, 1], s * rec[:, 0] + c * rec[:, 1]], -1)
        proj = project_to_polyline(xy, cache.centerline)
        line = cache.centerline
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
        nearest = np.stack([np.interp(proj, cum, line[:, 0]), np.interp(proj, cum, line[:, 1])], -1)
        dist = np.linalg.norm(xy - nearest, axis=1)
        assert dist[4:].max() < 0.1, (start, dist)  # on the centreline from 2 s on
        assert np.linalg.norm(rec[0, :2]) < 10.0  # and it starts from the perturbed start, not elsewhere
        assert np.all(np.diff(proj) > 0)  # always making progress along the route


def test_negative_term_lowers_the_reward_near_the_negative() -> None:
    cache = T.straight_road([T.ToyAgent(30.0, 0.0, speed=8.0)], ego_speed=8.0, token="lead")
    targets = build_scene_targets([cache], SHIFTS, SPEEDS, 2.0)
    neg = targets["lead"].negative
    assert neg is not None
    far = cache.human_future.copy()
    far[:, 1] += 3.6  # the neighbouring lane, far from the negative
    trajs = np.stack([neg, neg + np.array([0.3, 0.2, 0.0]), far])[None]
    driving = np.ones((1, 3))
    without, _ = shaped_reward(driving, trajs, [targets["lead"]], 0.0, 0.0, 2.0)
    with_neg, logs = shaped_reward(driving, trajs, [targets["lead"]], 0.5, 0.0, 2.0)
    drop = (without - with_neg)[0]
    assert drop[0] > 0.45 and drop[1] > 0.4 and drop[2] < 0.05 and logs["r_negative"] > 0
    # the recovery bonus rewards closeness to the recovery path
    rec = SceneTargets(None, targets["lead"].recovery)
    r, _ = shaped_reward(np.ones((1, 2)), np.stack([rec.recovery, far])[None], [rec], 0.5, 0.3, 2.0)
    assert r[0, 0] > r[0, 1]
