"""Map queries over a RoadNetwork: spatial crops on STRtree indices, relations, route centerline.

Proximity queries follow the devkit: an axis-aligned square of half-side `radius` around the point,
kept when a polygon `intersects` it. Point-in-layer queries use `contains` (boundary excluded).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Polygon

from drivefine_core.data.gpkg_reader import read_map
from drivefine_core.data.params import MapParams
from drivefine_core.data.road_network import RoadNetwork
from drivefine_core.data.route_planner import RouteGraph, RoutePlan
from drivefine_core.data.schema import wrap_angle

DRIVABLE_LAYERS = ("roadblock", "roadblock_connector", "intersection", "carpark")
LANE_LAYERS = ("lane", "lane_connector")
FALLBACK_LANE_WIDTH_M = 3.5  # only for a connector stored without polygon and width


class MapPolygon(NamedTuple):
    layer: str  # one of DRIVABLE_LAYERS or LANE_LAYERS
    id: str
    polygon: Polygon


class _Layer:
    """Parallel arrays (layer, id, geometry) with an STRtree over the geometries."""

    def __init__(self, items: list[tuple[str, str, Polygon]]) -> None:
        self.layers = [i[0] for i in items]
        self.ids = [i[1] for i in items]
        self.geoms = np.array([i[2] for i in items], dtype=object)
        self.tree = STRtree(self.geoms)

    def query_box(self, xy: np.ndarray, radius: float) -> np.ndarray:
        x, y = float(xy[0]), float(xy[1])
        hits = self.tree.query(shapely.box(x - radius, y - radius, x + radius, y + radius), predicate="intersects")
        return np.sort(hits)

    def polygons(self, hits: np.ndarray) -> list[MapPolygon]:
        return [MapPolygon(self.layers[i], self.ids[i], self.geoms[i]) for i in hits]


def _polygon(ring: np.ndarray) -> Polygon:
    poly = Polygon(ring)
    return poly if poly.is_valid else shapely.make_valid(poly).buffer(0)


class MapAPI:
    def __init__(self, network: RoadNetwork, params: MapParams | None = None) -> None:
        self.network = network
        self.params = params or MapParams()
        net = network
        self._drivable = _Layer(
            [("roadblock", k, _polygon(v.polygon)) for k, v in net.roadblocks.items()]
            + [("roadblock_connector", k, _polygon(v.polygon)) for k, v in net.roadblock_connectors.items()]
            + [("intersection", k, _polygon(v.polygon)) for k, v in net.intersections.items()]
            + [("carpark", k, _polygon(v)) for k, v in net.carparks.items()]
        )
        lane_items = [("lane", k, self._element_polygon(v.polygon, v.centerline, v.width)) for k, v in net.lanes.items()]
        lane_items += [
            ("lane_connector", k, self._element_polygon(v.polygon, v.centerline, v.width))
            for k, v in net.lane_connectors.items()
        ]
        self._lanes = _Layer(lane_items)
        self._centerlines = np.array([shapely.LineString(net.centerline(i)) for i in self._lanes.ids], dtype=object)
        self._intersections = _Layer([("intersection", k, _polygon(v.polygon)) for k, v in net.intersections.items()])
        self._graph = RouteGraph(net)

    @staticmethod
    def _element_polygon(ring: np.ndarray | None, centerline: np.ndarray, width: float) -> Polygon:
        if ring is not None:
            return _polygon(ring)
        half = (width if math.isfinite(width) and width > 0 else FALLBACK_LANE_WIDTH_M) / 2
        return shapely.LineString(centerline).buffer(half, cap_style="flat")

    # --- spatial -----------------------------------------------------------------------------
    def drivable_polygons(self, xy: np.ndarray, radius: float) -> list[MapPolygon]:
        """Roadblocks, roadblock connectors, intersections and car parks intersecting the square."""
        return self._drivable.polygons(self._drivable.query_box(xy, radius))

    def lane_polygons(self, xy: np.ndarray, radius: float) -> list[MapPolygon]:
        """Lanes and lane connectors intersecting the square."""
        return self._lanes.polygons(self._lanes.query_box(xy, radius))

    def lanes_near(self, xy: np.ndarray, radius: float) -> list[str]:
        """Ids of lanes / connectors intersecting the square, nearest centerline first."""
        hits = self._lanes.query_box(xy, radius)
        if len(hits) == 0:
            return []
        dist = shapely.distance(self._centerlines[hits], shapely.Point(float(xy[0]), float(xy[1])))
        return [self._lanes.ids[i] for i in hits[np.argsort(dist, kind="stable")]]

    def in_intersection(self, xy: np.ndarray) -> bool:
        return bool(self.points_in_intersection(np.asarray(xy, dtype=np.float64).reshape(1, 2))[0])

    def points_in_intersection(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: which of the (N, 2) points lie inside an intersection polygon."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        inside = np.zeros(len(points), dtype=bool)
        if len(points) and len(self._intersections.ids):
            pairs = self._intersections.tree.query(shapely.points(points), predicate="within")
            inside[pairs[0]] = True
        return inside

    def lanes_at(self, points: np.ndarray) -> list[list[str]]:
        """For each of the (N, 2) points, the lanes / connectors whose polygon contains it."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out: list[list[str]] = [[] for _ in range(len(points))]
        if len(points) and len(self._lanes.ids):
            pairs = self._lanes.tree.query(shapely.points(points), predicate="within")
            for p, g in zip(*pairs):
                out[p].append(self._lanes.ids[g])
        return out

    def on_drivable(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: the point lies inside a roadblock, roadblock connector, intersection or car park."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        inside = np.zeros(len(points), dtype=bool)
        if len(points) and len(self._drivable.ids):
            inside[self._drivable.tree.query(shapely.points(points), predicate="within")[0]] = True
        return inside

    # --- relations ---------------------------------------------------------------------------
    def _require(self, element_id: str, table: dict, what: str) -> None:
        if element_id not in table:
            raise KeyError(f"map '{self.network.location}': no {what} with id '{element_id}'")

    def centerline(self, element_id: str) -> np.ndarray:
        self._require(element_id, self._graph.length, "lane or lane connector")
        return self.network.centerline(element_id)

    def speed_limit(self, element_id: str) -> float | None:
        """Speed limit in m/s, None when the map has none (NULL)."""
        self._require(element_id, self._graph.length, "lane or lane connector")
        net = self.network
        value = net.lanes[element_id].speed_limit_mps if element_id in net.lanes else (
            net.lane_connectors[element_id].speed_limit_mps
        )
        return float(value) if value is not None and math.isfinite(value) else None

    def roadblock_of(self, element_id: str) -> str:
        self._require(element_id, self._graph.length, "lane or lane connector")
        return self.network.roadblock_of(element_id)

    def lanes_of_roadblock(self, roadblock_id: str) -> list[str]:
        """Lanes of a roadblock (left to right) or lane connectors of a roadblock connector."""
        net = self.network
        if roadblock_id not in net.roadblocks and roadblock_id not in net.roadblock_connectors:
            raise KeyError(f"map '{net.location}': no roadblock or roadblock connector with id '{roadblock_id}'")
        return self._graph.elements_of_block(roadblock_id)

    def successors(self, element_id: str) -> list[str]:
        """Lane -> its outgoing connectors; connector -> the lane it enters."""
        return list(self._graph.element_successors.get(element_id, []))

    def traffic_light_connectors(self) -> list[str]:
        return [k for k, v in self.network.lane_connectors.items() if v.has_traffic_light]

    # --- route -------------------------------------------------------------------------------
    def route_lane_ids(self, roadblock_ids: list[str]) -> list[str]:
        """Lanes and lane connectors of the route's roadblocks / roadblock connectors (unknown ids skipped)."""
        out: list[str] = []
        for block in roadblock_ids:
            out.extend(self._graph.elements_of_block(block))
        return out

    def start_element(self, start_pose: np.ndarray, candidates: list[str] | None = None) -> str | None:
        """The lane / connector under a pose: distance to the centerline plus a heading penalty.

        Without `candidates`, only elements within start_search_radius_m count; with them, the closest
        candidate counts even when it is further away.
        """
        p = self.params
        x, y, heading = (float(v) for v in start_pose[:3])
        near = self.lanes_near(np.array([x, y]), p.start_search_radius_m)
        if candidates is not None:
            allowed = set(candidates)
            near = [e for e in near if e in allowed]
            if not near:  # the pose is far from the route: PDM still starts on the closest route lane
                near = [e for e in candidates if e in self._graph.length]
        best, best_score = None, math.inf
        point = shapely.Point(x, y)
        for element in near:
            line = shapely.LineString(self.network.centerline(element))
            s = line.project(point)
            ahead = line.interpolate(min(s + 0.5, line.length))
            behind = line.interpolate(max(s - 0.5, 0.0))
            direction = math.atan2(ahead.y - behind.y, ahead.x - behind.x)
            score = line.distance(point) + p.heading_weight_m_per_rad * abs(float(wrap_angle(heading - direction)))
            if score < best_score:
                best, best_score = element, score
        return best

    def route_plan(self, roadblock_ids: list[str], start_pose: np.ndarray) -> RoutePlan:
        """Repaired route and its lane path / centerline from the lane under `start_pose`."""
        start_pose = np.asarray(start_pose, dtype=np.float64)
        anywhere = self.start_element(start_pose)
        start_block = self.network.roadblock_of(anywhere) if anywhere is not None else None
        route = self._graph.repair(list(roadblock_ids), start_block, self.params.route_repair_depth)
        start = self.start_element(start_pose, self.route_lane_ids(route))
        if start is None:
            return RoutePlan(route, [], np.zeros((0, 2)), False)
        path, complete = self._graph.lane_path(start, route)
        return RoutePlan(route, path, self._graph.centerline(path), complete)

    def route_centerline(self, roadblock_ids: list[str], start_pose: np.ndarray) -> np.ndarray:
        """(N, 2) centerline through the (repaired) route from the lane under the start pose."""
        return self.route_plan(roadblock_ids, start_pose).centerline


@functools.lru_cache(maxsize=8)
def _cached_api(maps_root: str, location: str) -> MapAPI:
    return MapAPI(read_map(maps_root, location))


def load_map_api(maps_root: str | Path, location: str) -> MapAPI:
    """MapAPI of one location, read once per process (maps are immutable inputs)."""
    return _cached_api(str(maps_root), location)
