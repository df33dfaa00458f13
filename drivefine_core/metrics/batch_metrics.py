"""Raw sub-metrics of the candidate rows of many scenes in one pass (the scorer's hot path).

The same rules as scene_metrics (which scores one scene's rows, and stays the definition the reference rows and
PDM-Closed use), arranged so that the work is one array pass over every (row, step) of the batch: only the map
look-ups (the scene's polygon and centreline grids) and the route projection run once per scene. NC and TTC,
the agents' half, are in batch_agents."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import shapely

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.batch_agents import agent_metrics, agent_pairs
from drivefine_core.metrics.batch_map import inside_polygons, near_polyline, polygon_kinds
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.ego_kernel import bounds, ego_boxes
from drivefine_core.metrics.map_kernels import arc_lengths
from drivefine_core.metrics.scene_index import INTERSECTION, LANE_ON_ROUTE, ROUTE_BLOCK, SceneIndex, scene_index
from drivefine_core.metrics.scene_metrics import driving_direction


def _areas(indexes: Sequence[SceneIndex], corners: np.ndarray, centers: np.ndarray, g: int) -> dict[str, np.ndarray]:
    """The masks of scene_metrics.ego_areas every state needs, for (S * G, T) rows: corners against the
    drivable polygons (DAC), centres against the on-route lanes and intersections (DDC, LK). Lane and
    intersection membership of the corners / rear axle matter only at a collision or TTC event (_event_areas)."""
    s = len(indexes)
    r, t = centers.shape[:2]
    n = g * t  # states per scene
    in_drivable = inside_polygons([x.drivable for x in indexes], corners.reshape(s, 4 * n, 2)).reshape(-1)
    kinds = polygon_kinds([x.route_polygons for x in indexes], [x.route_kind for x in indexes],
                          centers.reshape(s, n, 2)).reshape(r, t)
    return {"non_drivable": ~in_drivable.reshape(r, t, 4).all(axis=-1), "oncoming": (kinds & (1 << LANE_ON_ROUTE)) == 0,
            "center_in_intersection": (kinds & (1 << INTERSECTION)) != 0, "centers": centers, "corners": corners}


def _progress_along_route(indexes: Sequence[SceneIndex], points: np.ndarray) -> np.ndarray:
    """geometry.project_to_polyline of (S, M, 2) points on their scenes' centrelines."""
    points = np.ascontiguousarray(points, dtype=np.float64)
    return np.stack([arc_lengths(r.a, r.ab, r.seg_len, r.cum, r.centre, r.radius, ROUTE_BLOCK, points[i])
                     for i, r in enumerate(x.route for x in indexes)])


def _lane_keeping(far: np.ndarray, skip: np.ndarray) -> np.ndarray:
    """scene_metrics.lane_keeping on masks: the longest run of far steps (intersection steps neither count
    nor reset) must stay under the limit."""
    r, t = far.shape
    count = np.cumsum(far & ~skip, axis=1)
    steps = np.broadcast_to(np.arange(t), (r, t))
    last_reset = np.maximum.accumulate(np.where(~far & ~skip, steps, -1), axis=1)
    before = np.where(last_reset >= 0, np.take_along_axis(count, np.maximum(last_reset, 0), axis=1), 0)
    return (np.max(count - before, axis=1) < K.LK_MAX_STEPS).astype(float)


def _traffic_lights(caches: Sequence[MetricCache], indexes: Sequence[SceneIndex], corners: np.ndarray, g: int) -> np.ndarray:
    r, t = corners.shape[:2]
    ok = np.ones(r)
    lit = [i for i, c in enumerate(caches) if len(c.light_lane_index) and c.light_red[:, :t].any()]
    if not lit:
        return ok
    rows = (np.asarray(lit)[:, None] * g + np.arange(g)).ravel()
    lo_all, hi_all = bounds(corners[rows])  # (len(lit) * g, t, 2)
    for j, i in enumerate(lit):
        c, idx = caches[i], indexes[i]
        cs = corners[i * g : (i + 1) * g]
        lo, hi = lo_all[j * g : (j + 1) * g], hi_all[j * g : (j + 1) * g]
        for poly, box, red in zip(idx.light_polygons, idx.light_bounds, c.light_red[:, :t]):
            near = red[None] & np.all(lo <= box[2:], axis=-1) & np.all(hi >= box[:2], axis=-1)
            rr, tt = np.nonzero(near)
            if len(rr):
                hit = shapely.intersects(shapely.polygons(cs[rr, tt]), poly)
                ok[i * g + rr[hit]] = 0.0
    return ok


def candidate_metrics(caches: Sequence[MetricCache], states: np.ndarray, comfort: dict[str, np.ndarray],
                      v1: bool, v2: bool) -> dict[str, np.ndarray]:
    """(S, G, 41, 11) simulated candidate rows -> raw sub-metrics {"v1/nc": (S, G), ...} as
    scorer.raw_scene_metrics gives them; `comfort` holds comfort_metrics of the same rows."""
    s, g, t = states.shape[:3]
    rows = states.reshape(s * g, t, -1)
    centers, corners = ego_boxes(rows)
    indexes = [scene_index(c) for c in caches]
    areas = _areas(indexes, corners, centers, g)
    out: dict[str, np.ndarray] = {}
    dac = (~areas["non_drivable"].any(axis=1)).astype(float)
    ends = np.concatenate([centers[:, :1], centers[:, -1:]], axis=1).reshape(s, g * 2, 2)
    prog = _progress_along_route(indexes, ends).reshape(s, g, 2)
    progress = np.maximum(0.0, prog[..., 1] - prog[..., 0]).reshape(-1)
    far = ~near_polyline([x.near_centerline for x in indexes], centers.reshape(s, g * t, 2))
    ag = agent_pairs(caches, indexes, rows, centers, g)
    out.update(agent_metrics(indexes, rows, areas, ag, g, v1, v2))
    if v1:
        out.update({"v1/dac": dac, "v1/ddc": driving_direction(areas, exempt_intersections=False),
                    "v1/progress": progress})
    if v2:
        out.update({"v2/dac": dac, "v2/ddc": driving_direction(areas, exempt_intersections=True),
                    "v2/progress": progress,
                    "v2/tlc": _traffic_lights(caches, indexes, corners, g),
                    "v2/lk": _lane_keeping(far.reshape(s * g, t), areas["center_in_intersection"])})
    out = {k: v.reshape(s, g) for k, v in out.items()}
    out.update(comfort)
    return out
