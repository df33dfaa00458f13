"""Per-scene sub-metrics for R simulated rows at once (fast path). Rows are independent; nothing here
loops over rows. The indexes a scene needs are built lazily and kept on the cache (cache._runtime)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import INTERSECTION_LAYER, MetricCache, flatten_polygons
from drivefine_core.metrics.geometry import (
    PolygonIndex,
    PolylineNearIndex,
    boxes_overlap,
    ego_center,
    ego_corners,
    project_to_polyline,
    segment_hits_box,
)
from drivefine_core.metrics.simulator import H, VX, VY

_EGO_RADIUS = float(np.hypot(K.EGO_HALF_LENGTH, K.EGO_HALF_WIDTH))
_GRID_EXTENT_M = 130.0
PACKED = "packed_tables"  # runtime key of the grids as the metric cache stage stored them (scene_tables)


@dataclass
class SceneIndex:
    polygons: PolygonIndex  # drivable polygons, then lane polygons, then intersection polygons
    drivable: PolygonIndex  # the drivable polygons alone (DAC of every state)
    route_polygons: PolygonIndex  # on-route lane polygons, then intersection polygons (DDC, LK of every state)
    route_kind: np.ndarray  # (route polygons,) int8: LANE_ON_ROUTE or INTERSECTION
    n_drivable: int
    n_lanes: int
    lane_on_route: np.ndarray  # (n_lanes,)
    poly_kind: np.ndarray  # (polygons,) int8: DRIVABLE, LANE, LANE_ON_ROUTE or INTERSECTION
    near_centerline: PolylineNearIndex
    light_rings: list  # (M, 2) rings of the on-route connectors with a light
    light_bounds: np.ndarray  # (L, 4) min x, min y, max x, max y
    half_length: np.ndarray  # (N,)
    half_width: np.ndarray
    radius: np.ndarray
    stopped: np.ndarray  # (N,) static class or speed when first seen <= NC threshold
    is_agent: np.ndarray  # (N,) vehicle / pedestrian / bicycle
    agent_lo: np.ndarray  # (N, 2) bounding box of the observed box centres
    agent_hi: np.ndarray
    route: RouteBlocks
    _light_polygons: list | None = None

    @property
    def light_polygons(self) -> list:
        if self._light_polygons is None:  # shapely objects only for the scenes whose lights are tested
            self._light_polygons = [shapely.Polygon(r) for r in self.light_rings]
        return self._light_polygons

    def tables(self) -> dict[str, np.ndarray]:
        """The parts that are costly to build (grid tables), for the metric cache stage to keep."""
        return {**{f"{name}.{k}": v for name in ("polygons", "drivable", "route_polygons")
                   for k, v in getattr(self, name).tables().items()},
                **{f"centerline.{k}": v for k, v in self.near_centerline.tables().items()}}


DRIVABLE, LANE, LANE_ON_ROUTE, INTERSECTION = range(4)
_ROUTE_BLOCK = 16  # centreline segments per bounding circle


@dataclass
class RouteBlocks:
    """The route centreline for projections: segments, arc lengths, and bounding circles of runs of
    _ROUTE_BLOCK segments, so that a point is measured only against the runs that can hold its nearest segment."""
    a: np.ndarray  # (K, 2) segment starts
    ab: np.ndarray  # (K, 2) segment vectors
    seg_len: np.ndarray  # (K,)
    cum: np.ndarray  # (K,) arc length at each segment start
    centre: np.ndarray  # (B, 2)
    radius: np.ndarray  # (B,)

    @staticmethod
    def of(line: np.ndarray) -> "RouteBlocks":
        a, b = line[:-1], line[1:]
        ab = b - a
        seg_len = np.linalg.norm(ab, axis=-1)  # the numbers geometry.project_to_polyline computes
        cum = np.concatenate([[0.0], np.cumsum(seg_len)])[:-1]
        n = len(a)
        first = np.arange(0, n, _ROUTE_BLOCK)
        vert = np.minimum(first[:, None] + np.arange(_ROUTE_BLOCK + 1)[None], n)  # each run's vertices
        pts = line[vert]
        centre = (pts.min(axis=1) + pts.max(axis=1)) / 2.0
        radius = np.linalg.norm(pts - centre[:, None], axis=-1).max(axis=1)
        return RouteBlocks(a, ab, seg_len, cum, centre, radius * (1 + 1e-9) + 1e-9)


def scene_index(cache: MetricCache) -> SceneIndex:
    return cache.runtime("index", lambda: build_index(cache, unpack_tables(cache.recalled(PACKED))))


def unpack_tables(packed: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    """SceneIndex.tables() from the metric cache stage's packed form (scene_tables.export): CSR pointers
    from their deltas, indices widened back to int64. None -> None (the grids are built from the fields)."""
    if packed is None:
        return None
    tables = {}
    for name, arr in packed.items():
        if name.endswith("ptr"):
            ptr = np.zeros(len(arr) + 1, dtype=np.int64)
            np.cumsum(arr, dtype=np.int64, out=ptr[1:])
            tables[name] = ptr
        else:
            tables[name] = arr.astype(np.int64)
    return tables


def build_index(cache: MetricCache, tables: dict[str, np.ndarray] | None = None) -> SceneIndex:
    """The scene's polygon / centreline grids and per-agent constants; `tables` (SceneIndex.tables() of an
    earlier build of the same cache) skips building the grids."""
    inter = [cache.drivable_polygon(p) for p in np.nonzero(cache.drivable_layers == INTERSECTION_LAYER)[0]]
    iv, io = flatten_polygons(inter)
    names = np.array(cache.agent_names, dtype=object)
    is_agent = np.isin(names, K.AGENT_CLASSES) if len(names) else np.zeros(0, dtype=bool)
    n = cache.num_agents
    first = np.argmax(cache.agent_valid, axis=1) if n else np.zeros(0, dtype=int)
    first_speed = np.linalg.norm(cache.agent_velocity[np.arange(n), first], axis=-1) if n else np.zeros(0)
    dims = np.nanmax(cache.agent_boxes[..., 3:5], axis=1) if n else np.zeros((0, 2))
    # The ego stays within ~120 m of the origin over 4 s; points beyond the grid are still answered exactly.
    extent = (np.full(2, -_GRID_EXTENT_M), np.full(2, _GRID_EXTENT_M))
    verts = np.concatenate([cache.drivable_vertices, cache.lane_vertices, iv])
    n_d, n_l = len(cache.drivable_vertices), len(cache.lane_vertices)
    offsets = np.concatenate([cache.drivable_offsets, cache.lane_offsets[1:] + n_d, io[1:] + n_d + n_l])
    kind = np.concatenate([np.full(len(cache.drivable_ids), DRIVABLE), np.where(cache.lane_on_route, LANE_ON_ROUTE, LANE),
                           np.full(len(io) - 1, INTERSECTION)]).astype(np.int8)
    lights = [cache.lane_polygon(int(i)) for i in cache.light_lane_index]
    sub = (lambda prefix: {k[len(prefix):]: v for k, v in tables.items() if k.startswith(prefix)}) if tables else None
    on_route = np.flatnonzero(cache.lane_on_route)
    rv, ro = flatten_polygons([cache.lane_polygon(int(i)) for i in on_route] + inter)
    idx = SceneIndex(
        polygons=PolygonIndex(verts, offsets, extent=extent, tables=sub("polygons.") if sub else None),
        drivable=PolygonIndex(cache.drivable_vertices, cache.drivable_offsets, extent=extent,
                              tables=sub("drivable.") if sub else None),
        route_polygons=PolygonIndex(rv, ro, extent=extent, tables=sub("route_polygons.") if sub else None),
        route_kind=np.array([LANE_ON_ROUTE] * len(on_route) + [INTERSECTION] * len(inter), dtype=np.int8),
        n_drivable=len(cache.drivable_ids),
        n_lanes=len(cache.lane_ids),
        lane_on_route=cache.lane_on_route.copy(),
        poly_kind=kind,
        near_centerline=PolylineNearIndex(cache.centerline, K.LK_MAX_DISTANCE, tables=sub("centerline.") if sub else None),
        light_rings=lights,
        light_bounds=np.array([[*r.min(axis=0), *r.max(axis=0)] for r in lights]).reshape(-1, 4),
        half_length=dims[:, 0] / 2.0,
        half_width=dims[:, 1] / 2.0,
        radius=np.hypot(dims[:, 0], dims[:, 1]) / 2.0,
        stopped=~is_agent | ~(np.nan_to_num(first_speed, nan=0.0) > K.NC_STOPPED_SPEED),
        is_agent=is_agent,
        agent_lo=np.where(cache.agent_valid[..., None], cache.agent_boxes[..., :2], np.inf).min(axis=1).reshape(n, 2),
        agent_hi=np.where(cache.agent_valid[..., None], cache.agent_boxes[..., :2], -np.inf).max(axis=1).reshape(n, 2),
        route=RouteBlocks.of(cache.centerline),
    )
    return idx


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
