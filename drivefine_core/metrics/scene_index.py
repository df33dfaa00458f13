"""A scene's map and agent index for the scorer: polygon and centreline grids, per-agent constants and the
route's projection blocks, kept on the metric cache (cache._runtime). The metric cache stage stores all of it
(SceneIndex.tables, Parquet columns `pre.<name>`, scene_tables.py) in the form the queries read: narrow
integer tables over the occupied grid cells (grid_cells) whose edge rows name their vertices (edge_pieces).
`scene_index` wraps them as they are when the scene is first scored (nothing is unpacked or rebuilt but the
scene's shared vertex array); caches without them (built in memory, older files) build the index."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import shapely

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import INTERSECTION_LAYER, MetricCache
from drivefine_core.metrics.map_index import PolygonIndex, PolylineNearIndex

_GRID_EXTENT_M = 130.0
TABLES = "scene_tables"  # runtime key of the tables the metric cache stage stored (scene_tables.install)
POLYGON_INDEXES = ("polygons", "drivable", "route_polygons")
_AGENT_COLUMNS = ("half_length", "half_width", "radius")  # then agent_lo (2), agent_hi (2): `agents` (N, 7)


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
    half_length: np.ndarray  # (N,)
    half_width: np.ndarray
    radius: np.ndarray
    stopped: np.ndarray  # (N,) static class or speed when first seen <= NC threshold
    is_agent: np.ndarray  # (N,) vehicle / pedestrian / bicycle
    agent_lo: np.ndarray  # (N, 2) bounding box of the observed box centres
    agent_hi: np.ndarray
    route: RouteBlocks
    _lights: Callable[[], list]  # -> the (M, 2) rings of the on-route connectors with a light
    _light_rings: list | None = None
    _light_polygons: list | None = None

    @property
    def light_rings(self) -> list:
        if self._light_rings is None:  # only for the scenes whose lights are tested
            self._light_rings = self._lights()
        return self._light_rings

    @property
    def light_bounds(self) -> np.ndarray:
        """(L, 4) min x, min y, max x, max y."""
        return np.array([[*r.min(axis=0), *r.max(axis=0)] for r in self.light_rings]).reshape(-1, 4)

    @property
    def light_polygons(self) -> list:
        if self._light_polygons is None:
            self._light_polygons = [shapely.Polygon(r) for r in self.light_rings]
        return self._light_polygons

    def tables(self) -> dict[str, np.ndarray]:
        """Everything the index holds that is not a field of the cache, for the metric cache stage to keep."""
        out = {f"{name}.{k}": v for name in POLYGON_INDEXES for k, v in getattr(self, name).tables().items()}
        out.update({f"centerline.{k}": v for k, v in self.near_centerline.tables().items()})
        out["agents"] = np.concatenate([np.stack([getattr(self, c) for c in _AGENT_COLUMNS], axis=1).reshape(-1, 3),
                                        self.agent_lo.reshape(-1, 2), self.agent_hi.reshape(-1, 2)], axis=1)
        out["agent_flags"] = np.stack([self.stopped, self.is_agent], axis=1).reshape(-1, 2).astype(bool)
        out["poly_kind"], out["route_kind"] = self.poly_kind, self.route_kind
        out["route.seg_len"], out["route.cum"] = self.route.seg_len, self.route.cum
        out["route.blocks"] = np.concatenate([self.route.centre, self.route.radius[:, None]], axis=1)
        return out


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
    return cache.runtime("index", lambda: _index_of(cache))


def _index_of(cache: MetricCache) -> SceneIndex:
    tables = cache.recalled(TABLES)
    return from_tables(cache, tables) if tables is not None else build_index(cache)


SHARED_VERTICES = "shared_vertices"  # runtime key: the reader lays the two vertex fields out back to back


def _shared_vertices(cache: MetricCache) -> np.ndarray:
    """The scene's drivable then lane vertices: the rows of every polygon index's edge table name these. A
    cache read from Parquet holds both fields as views of one such array (cache_io), so nothing is copied."""
    joint = cache.recalled(SHARED_VERTICES)
    return joint if joint is not None else np.concatenate([cache.drivable_vertices, cache.lane_vertices])


def _ring_ids(vertices: np.ndarray, ranges: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rings given as ranges of `vertices` -> (vertex ids, offsets) of cache.flatten_polygons of those rings
    (which drops a closing vertex), as indexes into `vertices`."""
    ids = []
    for a, b in ranges:
        ring = vertices[a:b]
        closed = len(ring) > 3 and np.allclose(ring[0], ring[-1])
        ids.append(np.arange(a, b - 1 if closed else b))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(i) for i in ids])
    return (np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)), offsets


def _rings(cache: MetricCache, vertices: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(vertex ids into `vertices` (_shared_vertices), offsets) of one polygon index's polygons."""
    do, lo = cache.drivable_offsets, cache.lane_offsets + len(cache.drivable_vertices)
    drivable = [(int(do[p]), int(do[p + 1])) for p in range(len(do) - 1)]
    lanes = [(int(lo[p]), int(lo[p + 1])) for p in range(len(lo) - 1)]
    inter = [drivable[p] for p in np.flatnonzero(cache.drivable_layers == INTERSECTION_LAYER)]
    if name == "drivable":
        return np.arange(len(cache.drivable_vertices)), do
    if name == "polygons":  # every drivable and lane polygon as stored, then the intersections flattened again
        ids, offsets = _ring_ids(vertices, inter)
        n = len(cache.drivable_vertices) + len(cache.lane_vertices)
        return (np.concatenate([np.arange(n), ids]),
                np.concatenate([do, lo[1:], offsets[1:] + n]))
    return _ring_ids(vertices, [lanes[int(i)] for i in np.flatnonzero(cache.lane_on_route)] + inter)


def _ring_source(cache: MetricCache, vertices: np.ndarray, name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def rings() -> tuple[np.ndarray, np.ndarray]:
        ids, offsets = _rings(cache, vertices, name)
        return vertices[ids], offsets
    return rings


def _lights(cache: MetricCache) -> Callable[[], list]:
    lanes, offsets, index = cache.lane_vertices, cache.lane_offsets, cache.light_lane_index
    return lambda: [lanes[offsets[i] : offsets[i + 1]] for i in index]


def _agent_constants(cache: MetricCache) -> dict[str, np.ndarray]:
    names = np.array(cache.agent_names, dtype=object)
    is_agent = np.isin(names, K.AGENT_CLASSES) if len(names) else np.zeros(0, dtype=bool)
    n = cache.num_agents
    first = np.argmax(cache.agent_valid, axis=1) if n else np.zeros(0, dtype=int)
    first_speed = np.linalg.norm(cache.agent_velocity[np.arange(n), first], axis=-1) if n else np.zeros(0)
    dims = np.nanmax(cache.agent_boxes[..., 3:5], axis=1) if n else np.zeros((0, 2))
    return {
        "half_length": dims[:, 0] / 2.0,
        "half_width": dims[:, 1] / 2.0,
        "radius": np.hypot(dims[:, 0], dims[:, 1]) / 2.0,
        "stopped": ~is_agent | ~(np.nan_to_num(first_speed, nan=0.0) > K.NC_STOPPED_SPEED),
        "is_agent": is_agent,
        "agent_lo": np.where(cache.agent_valid[..., None], cache.agent_boxes[..., :2], np.inf).min(axis=1).reshape(n, 2),
        "agent_hi": np.where(cache.agent_valid[..., None], cache.agent_boxes[..., :2], -np.inf).max(axis=1).reshape(n, 2),
    }


def build_index(cache: MetricCache) -> SceneIndex:
    """The scene's polygon / centreline grids and per-agent constants, built from the cache's fields."""
    # The ego stays within ~120 m of the origin over 4 s; points beyond the grid are still answered exactly.
    extent = (np.full(2, -_GRID_EXTENT_M), np.full(2, _GRID_EXTENT_M))
    shared = _shared_vertices(cache)
    indexes = {}
    for name in POLYGON_INDEXES:
        ids, offsets = _rings(cache, shared, name)
        indexes[name] = PolygonIndex(shared[ids], offsets, extent=extent, shared=shared, vertex_ids=ids,
                                     union_interior=name == "drivable")  # DAC asks "inside any" only
    n_inter = int(np.count_nonzero(cache.drivable_layers == INTERSECTION_LAYER))
    kind = np.concatenate([np.full(len(cache.drivable_ids), DRIVABLE), np.where(cache.lane_on_route, LANE_ON_ROUTE, LANE),
                           np.full(n_inter, INTERSECTION)]).astype(np.int8)
    return SceneIndex(
        **indexes,
        route_kind=np.array([LANE_ON_ROUTE] * int(cache.lane_on_route.sum()) + [INTERSECTION] * n_inter, dtype=np.int8),
        n_drivable=len(cache.drivable_ids),
        n_lanes=len(cache.lane_ids),
        lane_on_route=cache.lane_on_route,
        poly_kind=kind,
        near_centerline=PolylineNearIndex(cache.centerline, K.LK_MAX_DISTANCE),
        **_agent_constants(cache),
        route=RouteBlocks.of(cache.centerline),
        _lights=_lights(cache),
    )


def with_agents(cache: MetricCache, index: SceneIndex) -> SceneIndex:
    """`index` (of a cache with the same map and route fields) with the agent constants of `cache`."""
    return replace(index, **_agent_constants(cache), _lights=_lights(cache), _light_rings=None, _light_polygons=None)


def from_tables(cache: MetricCache, tables: dict[str, np.ndarray]) -> SceneIndex:
    """The index SceneIndex.tables() stored, over the cache's own fields: views, no copies but the scene's
    shared vertex array."""
    shared = _shared_vertices(cache)
    indexes = {name: PolygonIndex.of_tables(tables, f"{name}.", shared, _ring_source(cache, shared, name))
               for name in POLYGON_INDEXES}
    agents, flags, blocks = tables["agents"], tables["agent_flags"], tables["route.blocks"]
    line = cache.centerline
    route = RouteBlocks(line[:-1], line[1:] - line[:-1], tables["route.seg_len"], tables["route.cum"],
                        blocks[:, :2], blocks[:, 2])
    return SceneIndex(
        **indexes,
        route_kind=tables["route_kind"],
        n_drivable=len(cache.drivable_ids),
        n_lanes=len(cache.lane_ids),
        lane_on_route=cache.lane_on_route,
        poly_kind=tables["poly_kind"],
        near_centerline=PolylineNearIndex.of_tables(line, K.LK_MAX_DISTANCE, tables, "centerline."),
        half_length=agents[:, 0], half_width=agents[:, 1], radius=agents[:, 2],
        stopped=flags[:, 0], is_agent=flags[:, 1],
        agent_lo=agents[:, 3:5], agent_hi=agents[:, 5:7],
        route=route,
        _lights=_lights(cache),
    )
