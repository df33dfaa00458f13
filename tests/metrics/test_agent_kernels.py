"""The compiled NC / TTC first contacts (agent_kernels) against geometry.boxes_overlap tested everywhere, and the
compiled route projection against geometry.project_to_polyline."""

import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.agent_kernels import Agents, first_contacts, first_ttc_hits
from drivefine_core.metrics.geometry import boxes_overlap, project_to_polyline
from drivefine_core.metrics.map_kernels import arc_lengths
from drivefine_core.metrics.scene_index import ROUTE_BLOCK, RouteBlocks
from drivefine_core.metrics.scene_metrics import _EGO_RADIUS


def _world(rng: np.random.Generator):
    """Ego rows driving along x at different speeds and agents crossing / following them."""
    r, t, n = 30, K.NUM_STATES, 12
    rows = np.zeros((r, t, 11))
    speed = rng.uniform(0, 12, r)
    speed[:3] = 0.001  # (nearly) standing: no TTC test
    rows[..., 0] = speed[:, None] * np.arange(t) * K.DT
    rows[..., 1] = rng.normal(0, 1, (r, 1))
    rows[..., 2] = rng.normal(0, 0.2, (r, t))
    rows[..., 3] = speed[:, None]
    centers = rows[..., :2] + K.REAR_AXLE_TO_CENTER * np.stack([np.cos(rows[..., 2]), np.sin(rows[..., 2])], -1)
    steps = np.arange(K.NUM_OBS_STEPS) * K.DT
    start = rng.uniform([0, -15], [40, 15], (n, 2))
    vel = rng.uniform(-8, 8, (n, 2))
    boxes = np.zeros((n, K.NUM_OBS_STEPS, 5))
    boxes[..., :2] = start[:, None] + vel[:, None] * steps[None, :, None]
    boxes[..., 2] = np.arctan2(vel[:, 1], vel[:, 0])[:, None]
    valid = rng.uniform(size=(n, K.NUM_OBS_STEPS)) > 0.1
    ag = {"boxes": boxes, "centres": boxes[..., :2].copy(), "valid": valid, "radius": np.full(n, np.hypot(2.3, 1.0)),
          "half_length": np.full(n, 2.3), "half_width": np.full(n, 1.0)}
    pair_row, pair_agent = np.meshgrid(np.arange(r), np.arange(n), indexing="ij")
    return rows, centers, ag, pair_row.ravel(), pair_agent.ravel()


def _overlap(ag, k, t, c, h) -> bool:
    if not ag["valid"][k, t]:
        return False
    d = ag["centres"][k, t] - c
    if not np.sqrt(d[0] * d[0] + d[1] * d[1]) <= _EGO_RADIUS + ag["radius"][k]:
        return False
    b = ag["boxes"][k, t]
    return bool(boxes_overlap(c, np.asarray(h), K.EGO_HALF_LENGTH, K.EGO_HALF_WIDTH, b[:2], np.asarray(b[2]),
                              ag["half_length"][k], ag["half_width"][k]))


def test_first_contacts_and_ttc_hits_match_a_test_of_every_box():
    rows, centers, ag, pr, pa = _world(np.random.default_rng(4))
    h = rows[..., 2]
    a = Agents.of(ag)
    contact = first_contacts(pr, pa, centers, np.cos(h), np.sin(h), a)
    tt, ll = first_ttc_hits(pr, pa, centers, np.cos(h), np.sin(h), np.hypot(rows[..., 3], rows[..., 4]), K.NUM_SIM_STEPS, a)
    look = K.TTC_LOOKAHEAD_STEPS
    for p, (r, k) in enumerate(zip(pr, pa)):
        hits = [t for t in range(rows.shape[1]) if _overlap(ag, k, t, centers[r, t], h[r, t])]
        assert contact[p] == (hits[0] if hits else -1)
        first = (-1, -1)
        for t in range(K.NUM_SIM_STEPS + 1):
            v = np.hypot(rows[r, t, 3], rows[r, t, 4])
            if v < K.TTC_STOPPED_SPEED:
                continue
            hit = [j for j, lk in enumerate(look) if _overlap(
                ag, k, t + lk, centers[r, t] + v * lk * K.DT * np.array([np.cos(h[r, t]), np.sin(h[r, t])]), h[r, t])]
            if hit:
                first = (t, hit[0])
                break
        assert (tt[p], ll[p]) == first
    assert (contact >= 0).sum() > 5 and (tt >= 0).sum() > (contact >= 0).sum()  # both kinds of event occur


def test_arc_lengths_are_project_to_polyline():
    rng = np.random.default_rng(6)
    line = np.cumsum(rng.normal([1.0, 0.0], [0.5, 1.0], size=(3 * ROUTE_BLOCK + 5, 2)), axis=0)
    points = line[rng.integers(0, len(line), 500)] + rng.normal(0, 6, (500, 2))
    r = RouteBlocks.of(line)
    got = arc_lengths(r.a, r.ab, r.seg_len, r.cum, r.centre, r.radius, ROUTE_BLOCK, points)
    np.testing.assert_array_equal(got, project_to_polyline(points, line))
    assert np.isnan(arc_lengths(r.a, r.ab, r.seg_len, r.cum, r.centre, r.radius, ROUTE_BLOCK, np.full((1, 2), np.nan)))[0]
