"""Per-scene sub-metrics for R simulated rows at once (fast path). Rows are independent; nothing here
loops over rows. The scene's index (scene_index.py) is built lazily and kept on the cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.geometry import (
    boxes_overlap,
    ego_center,
    ego_corners,
    project_to_polyline,
    segment_hits_box,
)
from drivefine_core.metrics.scene_index import scene_index
from drivefine_core.metrics.simulator import H, VX, VY

_EGO_RADIUS = float(np.hypot(K.EGO_HALF_LENGTH, K.EGO_HALF_WIDTH))


def _angles(states: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Angle between ego heading and rear-axle -> object direction; nan when they coincide."""
    d = centers - states[..., None, :2] if centers.ndim == states.ndim + 1 else centers - states[..., :2]
    h = states[..., H]
    if centers.ndim == states.ndim + 1:
        h = h[..., None]
    norm = np.linalg.norm(d, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosang = (d[..., 0] * np.cos(h) + d[..., 1] * np.sin(h)) / norm
        return np.arccos(np.clip(cosang, -1.0, 1.0))


def ego_areas(cache: MetricCache, states: np.ndarray) -> dict[str, np.ndarray]:
    """(R, T, 11) -> masks (R, T): multiple_lanes, non_drivable, oncoming, center_in_intersection,
    rear_in_intersection; plus centers (R, T, 2) and corners (R, T, 4, 2). One polygon query for all."""
    idx = scene_index(cache)
    r, t = states.shape[:2]
    n = r * t
    corners = ego_corners(states)
    centers = ego_center(states)
    pts = np.concatenate([corners.reshape(-1, 2), centers.reshape(-1, 2), states[..., :2].reshape(-1, 2)])
    q, p = idx.polygons.query_pairs(pts)
    first_lane, first_inter = idx.n_drivable, idx.n_drivable + idx.n_lanes
    corner = q < 4 * n
    center = (q >= 4 * n) & (q < 5 * n)
    rear = q >= 5 * n
    in_drivable = np.zeros(4 * n, dtype=bool)
    in_drivable[q[corner & (p < first_lane)]] = True
    # Multiple lanes: more than one lane polygon holds a corner and none holds all four.
    lane_pairs = corner & (p >= first_lane) & (p < first_inter)
    key = (q[lane_pairs] // 4) * (first_inter + 1) + p[lane_pairs]
    uniq, count = np.unique(key, return_counts=True)
    state = uniq // (first_inter + 1)
    distinct = np.bincount(state, minlength=n)
    full = np.bincount(state, weights=count == 4, minlength=n) > 0
    on_route = np.zeros(len(p), dtype=bool)
    lane_p = (p >= first_lane) & (p < first_inter)
    on_route[lane_p] = idx.lane_on_route[p[lane_p] - first_lane]
    center_on_route = np.zeros(n, dtype=bool)
    center_on_route[q[center & on_route] - 4 * n] = True
    center_inter = np.zeros(n, dtype=bool)
    center_inter[q[center & (p >= first_inter)] - 4 * n] = True
    rear_inter = np.zeros(n, dtype=bool)
    rear_inter[q[rear & (p >= first_inter)] - 5 * n] = True
    return {
        "multiple_lanes": ((distinct > 1) & ~full).reshape(r, t),
        "non_drivable": ~in_drivable.reshape(r, t, 4).all(axis=-1),
        "oncoming": ~center_on_route.reshape(r, t),
        "center_in_intersection": center_inter.reshape(r, t),
        "rear_in_intersection": rear_inter.reshape(r, t),
        "centers": centers,
        "corners": corners,
    }


@dataclass
class _Agents:
    """The agents one call looks at (a subset of the cache's, by index)."""
    index: np.ndarray  # (n,) into the cache's agents
    boxes: np.ndarray  # (n, 51, 5)
    valid: np.ndarray  # (n, 51)
    half_length: np.ndarray
    half_width: np.ndarray
    radius: np.ndarray
    stopped: np.ndarray
    is_agent: np.ndarray


def agents_near(cache: MetricCache, centers: np.ndarray, reach: float) -> _Agents:
    """Agents whose box centre comes within `reach` (+ both radii) of the bounding box of the ego centres
    at some observed step; the others cannot touch any row."""
    idx = scene_index(cache)
    lo, hi = centers.reshape(-1, 2).min(axis=0), centers.reshape(-1, 2).max(axis=0)
    c = np.nan_to_num(cache.agent_boxes[..., :2], nan=np.inf)
    margin = (reach + _EGO_RADIUS + idx.radius)[:, None, None]
    close = cache.agent_valid & np.all((c >= lo - margin) & (c <= hi + margin), axis=-1)
    keep = np.nonzero(close.any(axis=1))[0]
    return _Agents(keep, cache.agent_boxes[keep], cache.agent_valid[keep], idx.half_length[keep],
                   idx.half_width[keep], idx.radius[keep], idx.stopped[keep], idx.is_agent[keep])


def _pairs_overlap(ego_c, ego_h, ag: _Agents, boxes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Ego boxes (..., 2)/(...) vs agent boxes (..., N, 5) with a bounding-circle prefilter -> (..., N)."""
    ac = boxes[..., :2]
    dist = np.linalg.norm(np.nan_to_num(ac) - ego_c[..., None, :], axis=-1)
    near = valid & (dist <= _EGO_RADIUS + ag.radius)
    out = np.zeros(near.shape, dtype=bool)
    sel = np.nonzero(near)
    if len(sel[0]):
        n = sel[-1]
        eh = sel[:-1]
        out[sel] = boxes_overlap(ego_c[eh], ego_h[eh], K.EGO_HALF_LENGTH, K.EGO_HALF_WIDTH,
                                 boxes[sel][:, :2], boxes[sel][:, 2], ag.half_length[n], ag.half_width[n])
    return out


def removed_at_start(cache: MetricCache) -> np.ndarray:
    """(N,) agents whose box overlaps the ego box at t = 0 (dropped in v2)."""
    def make() -> np.ndarray:
        idx = scene_index(cache)
        everyone = _Agents(np.arange(cache.num_agents), cache.agent_boxes, cache.agent_valid, idx.half_length,
                           idx.half_width, idx.radius, idx.stopped, idx.is_agent)
        init = np.zeros((1, 3))
        return _pairs_overlap(ego_center(init), init[:, 2], everyone, cache.agent_boxes[None, :, 0], cache.agent_valid[None, :, 0])[0]

    return cache.runtime("removed", make)


def collisions(cache: MetricCache, states: np.ndarray, areas: dict, ignore: np.ndarray, ag: _Agents) -> np.ndarray:
    """NC per row. Each track is judged once, at its first contact with the ego."""
    r, t = states.shape[:2]
    n = len(ag.index)
    if n == 0:
        return np.ones(r)
    boxes = np.swapaxes(ag.boxes[:, :t], 0, 1)[None]  # (1, T, n, 5)
    valid = (np.swapaxes(ag.valid[:, :t], 0, 1) & ~ignore[ag.index][None])[None]
    centers = areas["centers"]
    hit = _pairs_overlap(centers, states[..., H], ag, np.broadcast_to(boxes, (r,) + boxes.shape[1:]),
                         np.broadcast_to(valid, (r,) + valid.shape[1:]))  # (R, T, n)
    touched = hit.any(axis=1)
    first = np.argmax(hit, axis=1)  # (R, N)
    rr, nn = np.nonzero(touched)
    tt = first[rr, nn]
    st = states[rr, tt]
    box = ag.boxes[nn, tt]
    speed = np.hypot(st[:, VX], st[:, VY])
    angle = _angles(st, box[:, :2])
    corners = areas["corners"][rr, tt]
    front = segment_hits_box(corners[:, 0], corners[:, 3], box[:, :2], box[:, 2], ag.half_length[nn], ag.half_width[nn])
    lateral_fault = areas["multiple_lanes"][rr, tt] | areas["non_drivable"][rr, tt]
    ego_stopped = speed <= K.NC_STOPPED_SPEED
    behind = angle > K.BEHIND_ANGLE
    at_fault = ~ego_stopped & (ag.stopped[nn] | (~behind & (front | lateral_fault)))
    value = np.where(ag.is_agent[nn], 0.0, 0.5)
    nc = np.ones(r)
    np.minimum.at(nc, rr[at_fault], value[at_fault])
    return nc


def time_to_collision(cache: MetricCache, states: np.ndarray, areas: dict, ignore: np.ndarray,
                      last_step: int, ag: _Agents) -> np.ndarray:
    """TTC per row over steps 0..last_step with look-aheads 0, 0.3, 0.6, 0.9 s.

    TTC keeps its own set of judged tracks, empty at the start: a track the ego touched (whatever NC made of
    it) is still tested here (docs/navsim-rules.md, TTC). Only `ignore` (v2: overlapping at t = 0) is skipped."""
    r = states.shape[0]
    n = len(ag.index)
    if n == 0:
        return np.ones(r)
    steps = np.arange(last_step + 1)
    look = np.array(K.TTC_LOOKAHEAD_STEPS)
    obs_t = steps[:, None] + look[None]  # (T, L)
    st = states[:, steps]  # (R, T, 11)
    speed = np.hypot(st[..., VX], st[..., VY])
    shift = speed[..., None] * look[None, None] * K.DT  # (R, T, L)
    heading = st[..., H]
    centers = areas["centers"][:, steps][:, :, None] + shift[..., None] * np.stack([np.cos(heading), np.sin(heading)], -1)[:, :, None]
    boxes = np.moveaxis(ag.boxes[:, obs_t], 0, 2)[None]  # (1, T, L, n, 5)
    valid = np.moveaxis(ag.valid[:, obs_t], 0, 2)[None] & ~ignore[ag.index]  # (1, T, L, n)
    valid = valid & (speed >= K.TTC_STOPPED_SPEED)[..., None, None]
    hh = np.broadcast_to(heading[..., None], centers.shape[:-1])
    hit = _pairs_overlap(centers, hh, ag, np.broadcast_to(boxes, (r,) + boxes.shape[1:]), valid)
    hit = hit.reshape(r, -1, n)  # time-major, then look-ahead: the devkit's visiting order
    any_hit = hit.any(axis=1)
    first = np.argmax(hit, axis=1)
    rr, nn = np.nonzero(any_hit)
    ff = first[rr, nn]
    tt, ll = steps[ff // len(look)], ff % len(look)
    angle = _angles(states[rr, tt], ag.boxes[nn, tt + look[ll], :2])
    risky = (areas["multiple_lanes"][rr, tt] | areas["non_drivable"][rr, tt] | areas["rear_in_intersection"][rr, tt])
    critical = (angle < K.AHEAD_ANGLE) | (risky & ~(angle > K.BEHIND_ANGLE))
    ttc = np.ones(r)
    ttc[rr[critical]] = 0.0
    return ttc


def driving_direction(areas: dict, exempt_intersections: bool) -> np.ndarray:
    """DDC per row: the worst 1 s window of oncoming progress. v2 (exempt_intersections) does not count steps
    whose centre is inside an intersection; v1.1 counts them (docs/navsim-rules.md, DDC)."""
    c = areas["centers"]
    step = np.concatenate([np.zeros(c.shape[:1] + (1,)), np.linalg.norm(np.diff(c, axis=1), axis=-1)], axis=1)
    counted = areas["oncoming"] & ~areas["center_in_intersection"] if exempt_intersections else areas["oncoming"]
    step = np.where(counted, step, 0.0)
    cum = np.concatenate([np.zeros((len(step), 1)), np.cumsum(step, axis=1)], axis=1)
    worst = np.max(cum[:, K.DDC_WINDOW :] - cum[:, : -K.DDC_WINDOW], axis=1)
    return np.where(worst < K.DDC_OK, 1.0, np.where(worst < K.DDC_VIOLATION, 0.5, 0.0))


def progress(cache: MetricCache, areas: dict) -> np.ndarray:
    c = areas["centers"]
    s = project_to_polyline(np.concatenate([c[:, 0], c[:, -1]]), cache.centerline).reshape(2, -1)
    return np.maximum(0.0, s[1] - s[0])


def lane_keeping(cache: MetricCache, areas: dict) -> np.ndarray:
    c = areas["centers"]
    r, t = c.shape[:2]
    far = ~scene_index(cache).near_centerline.within(c.reshape(-1, 2)).reshape(r, t)
    skip = areas["center_in_intersection"]
    # Run length of "far" steps where intersection steps neither count nor reset: far steps so far minus
    # far steps up to the last reset (a near step outside an intersection).
    count = np.cumsum(far & ~skip, axis=1)
    steps = np.broadcast_to(np.arange(t), (r, t))
    last_reset = np.maximum.accumulate(np.where(~far & ~skip, steps, -1), axis=1)
    before = np.where(last_reset >= 0, np.take_along_axis(count, np.maximum(last_reset, 0), axis=1), 0)
    return (np.max(count - before, axis=1) < K.LK_MAX_STEPS).astype(float)


def traffic_lights(cache: MetricCache, areas: dict) -> np.ndarray:
    idx = scene_index(cache)
    corners = areas["corners"]
    r, t = corners.shape[:2]
    ok = np.ones(r)
    if not idx.light_rings or not cache.light_red[:, :t].any():
        return ok
    lo, hi = corners.min(axis=2), corners.max(axis=2)  # (R, T, 2) ego bounding boxes
    for poly, bounds, red in zip(idx.light_polygons, idx.light_bounds, cache.light_red[:, :t]):
        near = red[None] & np.all(lo <= bounds[2:], axis=-1) & np.all(hi >= bounds[:2], axis=-1)
        rr, tt = np.nonzero(near)
        if len(rr):  # exact test only where the boxes' bounds overlap the red connector's bounds
            hit = shapely.intersects(shapely.polygons(corners[rr, tt]), poly)
            ok[rr[hit]] = 0.0
    return ok
