"""A scene's map and agent index for the scorer: polygon and centreline grids, per-agent constants and the
route's projection blocks, built once per metric cache and kept on it (cache._runtime). The metric cache stage
stores the costly grids (SceneIndex.tables) packed next to the cache (scene_tables.py); `scene_index` unpacks
them when the scene is first scored."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import INTERSECTION_LAYER, MetricCache, flatten_polygons
from drivefine_core.metrics.geometry import PolygonIndex, PolylineNearIndex

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
ROUTE_BLOCK = 16  # centreline segments per bounding circle


@dataclass
class RouteBlocks:
    """The route centreline for projections: segments, arc lengths, and bounding circles of runs of
    ROUTE_BLOCK segments, so that a point is measured only against the runs that can hold its nearest segment."""
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
        first = np.arange(0, n, ROUTE_BLOCK)
        vert = np.minimum(first[:, None] + np.arange(ROUTE_BLOCK + 1)[None], n)  # each run's vertices
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
