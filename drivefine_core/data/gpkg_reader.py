"""nuPlan GPKG map -> RoadNetwork (real nuPlan maps and the synthetic maps written in the same format).

Layout and relations follow docs/nuplan-map-format.md: `<maps_root>/nuplan-maps-v1.0.json` names each
location's version; `<location>/<version>/map.gpkg` holds the vector layers and a `meta` table whose
`projectedCoordSystem` row is the CRS every layer is converted to. Ids are str(fid).
"""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry.base import BaseGeometry

from drivefine_core.data.errors import MapFormatError
from drivefine_core.storage.safe_paths import UnsafePathError, safe_name, shown
from drivefine_core.data.road_network import (
    Intersection,
    Lane,
    LaneConnector,
    Roadblock,
    RoadblockConnector,
    RoadNetwork,
)

MAPS_VERSION = "nuplan-maps-v1.0"
# Logs name the city; map folders name the map.
LOCATION_ALIASES = {
    "las_vegas": "us-nv-las-vegas-strip",
    "boston": "us-ma-boston",
    "pittsburgh": "us-pa-pittsburgh-hazelwood",
    "singapore": "sg-one-north",
}
# Layer -> columns read from it (the fid comes from the GPKG FID).
REQUIRED_LAYERS: dict[str, tuple[str, ...]] = {
    "lanes_polygons": ("lane_group_fid", "lane_index", "speed_limit_mps"),
    "lane_connectors": (
        "entry_lane_fid", "exit_lane_fid", "lane_group_connector_fid", "intersection_fid",
        "speed_limit_mps", "traffic_light_stop_line_fids",
    ),  # fmt: skip
    "gen_lane_connectors_scaled_width_polygons": ("lane_connector_fid",),
    "baseline_paths": ("lane_fid", "lane_connector_fid"),
    "lane_groups_polygons": (),
    "lane_group_connectors": ("from_lane_group_fid", "to_lane_group_fid", "intersection_fid"),
    "intersections": (),
    "carpark_areas": (),
    "crosswalks": (),
    "stop_polygons": ("stop_polygon_type_fid",),
}
OPTIONAL_LANE_COLUMNS = ("left_boundary_fid", "right_boundary_fid")


def canonical_location(location: str) -> str:
    return LOCATION_ALIASES.get(location, location)


def map_path(maps_root: str | Path, location: str) -> tuple[Path, str, str]:
    """(gpkg path, canonical location, version) from the maps index JSON."""
    index_path = Path(maps_root) / f"{MAPS_VERSION}.json"
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise MapFormatError(str(index_path), "<file>", "maps index not found") from None
    except json.JSONDecodeError as exc:
        raise MapFormatError(str(index_path), "<json>", f"not valid JSON: {exc}") from None
    name = canonical_location(location)
    if not isinstance(index, dict) or name not in index:
        known = sorted(index) if isinstance(index, dict) else []
        raise MapFormatError(str(index_path), name, f"unknown map location (known: {known})")
    entry = index[name]
    version = entry.get("version") if isinstance(entry, dict) else None
    if not isinstance(version, str) or not version:
        raise MapFormatError(str(index_path), f"{name}.version", "missing or not a string")
    try:  # both become folders under maps_root
        safe_name(name, "map location")
        safe_name(version, "map version")
    except UnsafePathError as exc:
        raise MapFormatError(str(index_path), f"{shown(name)}.version", exc.reason) from None
    return Path(maps_root) / name / version / "map.gpkg", name, version


class _GpkgFile:
    """Reads layers of one GPKG with checks; every error names the file and layer/column."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise MapFormatError(str(path), "<file>", "map file not found")
        try:
            self.layers = {str(name) for name, _ in pyogrio.list_layers(path)}
        except Exception as exc:  # GDAL raises its own types for unreadable files
            raise MapFormatError(str(path), "<file>", f"not a readable GeoPackage ({exc})") from None

    def fail(self, field: str, reason: str) -> None:
        raise MapFormatError(str(self.path), field, reason)

    def projected_crs(self) -> str:
        # `meta` is a plain SQLite table; GDAL lists it only in some configurations, so ask SQLite.
        try:
            with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
                cols = {r[1] for r in db.execute("PRAGMA table_info(meta)")}
                if not cols:
                    self.fail("meta", "missing layer")
                for col in ("key", "value"):
                    if col not in cols:
                        self.fail(f"meta.{col}", "missing column")
                row = db.execute("SELECT value FROM meta WHERE key = 'projectedCoordSystem'").fetchone()
        except sqlite3.Error as exc:
            self.fail("meta", f"unreadable ({exc})")
        if row is None or not row[0]:
            self.fail("meta.projectedCoordSystem", "missing row")
        return str(row[0])

    def read(self, layer: str, columns: tuple[str, ...], geometry: bool = True, crs: str | None = None) -> pd.DataFrame:
        if layer not in self.layers:
            self.fail(layer, "missing layer")
        df = pyogrio.read_dataframe(self.path, layer=layer, fid_as_index=True, read_geometry=geometry)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            self.fail(f"{layer}.{missing[0]}", "missing column")
        if geometry:
            if not isinstance(df, gpd.GeoDataFrame) or df.geometry.isna().any():
                self.fail(f"{layer}.geometry", "missing geometry")
            empty = df.index[df.geometry.is_empty]
            if len(empty):
                self.fail(f"{layer}.geometry", f"empty geometry in row fid {empty[0]}")
            if crs is not None and df.crs is not None and not df.crs.equals(crs):
                df = df.to_crs(crs)  # stored geographic (or other) coordinates -> the map's projected CRS
        return df

    def fid(self, value: Any, field: str, row: Any, required: bool = True) -> str | None:
        """A fid cell as a string id; NULL integers arrive as NaN floats."""
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            if required:
                self.fail(field, f"NULL in row fid {row}")
            return None
        if isinstance(value, str):
            text = value.strip()
            if not text.lstrip("-").isdigit():
                self.fail(field, f"not an integer fid: {value!r} (row fid {row})")
            return str(int(text))
        number = float(value)
        if not number.is_integer():
            self.fail(field, f"not an integer fid: {value!r} (row fid {row})")
        return str(int(number))


def _ring(geom: BaseGeometry) -> np.ndarray:
    """Exterior ring (M, 2) of a polygon; for a multipolygon, of its largest part."""
    if geom.geom_type == "MultiPolygon":
        geom = max(geom.geoms, key=lambda g: g.area)
    return np.asarray(geom.exterior.coords, dtype=np.float64)[:, :2]


def _line(geom: BaseGeometry) -> np.ndarray:
    if geom.geom_type == "MultiLineString":
        merged = shapely.line_merge(geom)
        geom = merged if merged.geom_type == "LineString" else max(merged.geoms, key=lambda g: g.length)
    return np.asarray(geom.coords, dtype=np.float64)[:, :2]


def _width(polygon: np.ndarray | None, centerline: np.ndarray) -> float:
    """Mean width = area / length; the GPKG stores no width column."""
    length = float(np.sum(np.linalg.norm(np.diff(centerline, axis=0), axis=1)))
    if polygon is None or length <= 0:
        return float("nan")
    return float(shapely.Polygon(polygon).area / length)


def _float(value: Any) -> float:
    return float("nan") if value is None or value is pd.NA else float(value)


def _stop_line_ids(gp: _GpkgFile, value: Any, row: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (int, np.integer, float)):
        return [gp.fid(value, "lane_connectors.traffic_light_stop_line_fids", row) or ""]
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    return [gp.fid(p, "lane_connectors.traffic_light_stop_line_fids", row) or "" for p in parts]


def read_gpkg(path: str | Path, location: str, version: str) -> RoadNetwork:
    """Read one map.gpkg into a RoadNetwork (coordinates in the meta table's projected CRS)."""
    gp = _GpkgFile(Path(path))
    crs = gp.projected_crs()
    layer = {name: gp.read(name, cols, crs=crs) for name, cols in REQUIRED_LAYERS.items()}
    net = RoadNetwork(location=location, version=version, crs=crs)

    lane_lines: dict[str, np.ndarray] = {}
    connector_lines: dict[str, np.ndarray] = {}
    paths = layer["baseline_paths"]
    for fid, lane_fid, conn_fid, geom in zip(paths.index, paths["lane_fid"], paths["lane_connector_fid"], paths.geometry):
        lane_id = gp.fid(lane_fid, "baseline_paths.lane_fid", fid, required=False)
        conn_id = gp.fid(conn_fid, "baseline_paths.lane_connector_fid", fid, required=False)
        if lane_id is not None:
            lane_lines[lane_id] = _line(geom)
        elif conn_id is not None:
            connector_lines[conn_id] = _line(geom)

    lanes = layer["lanes_polygons"]
    has_bounds = all(c in lanes.columns for c in OPTIONAL_LANE_COLUMNS)
    for row in lanes.itertuples():
        lane_id = str(row.Index)
        if lane_id not in lane_lines:
            gp.fail("baseline_paths.lane_fid", f"no centerline for lane {lane_id}")
        polygon = _ring(row.geometry)
        lane_index = row.lane_index
        if lane_index is None or (isinstance(lane_index, float) and math.isnan(lane_index)):
            gp.fail("lanes_polygons.lane_index", f"NULL in row fid {lane_id}")
        net.lanes[lane_id] = Lane(
            id=lane_id,
            roadblock_id=gp.fid(row.lane_group_fid, "lanes_polygons.lane_group_fid", lane_id) or "",
            lane_index=int(lane_index),
            centerline=lane_lines[lane_id],
            width=_width(polygon, lane_lines[lane_id]),
            speed_limit_mps=_float(row.speed_limit_mps),
            polygon=polygon,
            left_boundary_id=gp.fid(row.left_boundary_fid, "lanes_polygons.left_boundary_fid", lane_id, False)
            if has_bounds else None,
            right_boundary_id=gp.fid(row.right_boundary_fid, "lanes_polygons.right_boundary_fid", lane_id, False)
            if has_bounds else None,
        )  # fmt: skip

    polys = layer["gen_lane_connectors_scaled_width_polygons"]
    connector_polys = {
        gp.fid(c, "gen_lane_connectors_scaled_width_polygons.lane_connector_fid", fid) or "": _ring(g)
        for fid, c, g in zip(polys.index, polys["lane_connector_fid"], polys.geometry)
    }
    for row in layer["lane_connectors"].itertuples():
        cid = str(row.Index)
        centerline = connector_lines.get(cid)
        if centerline is None:  # the devkit reads baseline_paths; the layer's own line is the same path
            centerline = _line(row.geometry)
        polygon = connector_polys.get(cid)
        stop_lines = _stop_line_ids(gp, row.traffic_light_stop_line_fids, cid)
        net.lane_connectors[cid] = LaneConnector(
            id=cid,
            roadblock_connector_id=gp.fid(row.lane_group_connector_fid, "lane_connectors.lane_group_connector_fid", cid)
            or "",
            # the devkit's direction: a connector leaves exit_lane_fid and enters entry_lane_fid
            from_lane_id=gp.fid(row.exit_lane_fid, "lane_connectors.exit_lane_fid", cid) or "",
            to_lane_id=gp.fid(row.entry_lane_fid, "lane_connectors.entry_lane_fid", cid) or "",
            centerline=centerline,
            width=_width(polygon, centerline),
            speed_limit_mps=_float(row.speed_limit_mps),
            polygon=polygon,
            intersection_id=gp.fid(row.intersection_fid, "lane_connectors.intersection_fid", cid, required=False),
            traffic_light_stop_line_ids=stop_lines,
            has_traffic_light=bool(stop_lines),
        )

    lanes_by_block: dict[str, list[Lane]] = {}
    for lane in net.lanes.values():
        lanes_by_block.setdefault(lane.roadblock_id, []).append(lane)
    for fid, geom in zip(layer["lane_groups_polygons"].index, layer["lane_groups_polygons"].geometry):
        rid = str(fid)
        members = sorted(lanes_by_block.get(rid, []), key=lambda ln: ln.lane_index)
        net.roadblocks[rid] = Roadblock(id=rid, lane_ids=[ln.id for ln in members], polygon=_ring(geom))
    orphans = sorted(set(lanes_by_block) - set(net.roadblocks))
    if orphans:
        gp.fail("lanes_polygons.lane_group_fid", f"refers to roadblocks missing from lane_groups_polygons: {orphans[:5]}")

    conns_by_block: dict[str, list[str]] = {}
    for lc in net.lane_connectors.values():
        conns_by_block.setdefault(lc.roadblock_connector_id, []).append(lc.id)
    for row in layer["lane_group_connectors"].itertuples():
        rid = str(row.Index)
        net.roadblock_connectors[rid] = RoadblockConnector(
            id=rid,
            from_roadblock_id=gp.fid(row.from_lane_group_fid, "lane_group_connectors.from_lane_group_fid", rid) or "",
            to_roadblock_id=gp.fid(row.to_lane_group_fid, "lane_group_connectors.to_lane_group_fid", rid) or "",
            lane_connector_ids=conns_by_block.get(rid, []),
            polygon=_ring(row.geometry),
            intersection_id=gp.fid(row.intersection_fid, "lane_group_connectors.intersection_fid", rid, False),
        )
    orphans = sorted(set(conns_by_block) - set(net.roadblock_connectors))
    if orphans:
        gp.fail(
            "lane_connectors.lane_group_connector_fid",
            f"refers to roadblock connectors missing from lane_group_connectors: {orphans[:5]}",
        )

    for fid, geom in zip(layer["intersections"].index, layer["intersections"].geometry):
        net.intersections[str(fid)] = Intersection(id=str(fid), polygon=_ring(geom))
    net.carparks = {str(f): _ring(g) for f, g in zip(layer["carpark_areas"].index, layer["carpark_areas"].geometry)}
    net.crosswalks = {str(f): _ring(g) for f, g in zip(layer["crosswalks"].index, layer["crosswalks"].geometry)}
    stops = layer["stop_polygons"]
    for fid, kind, geom in zip(stops.index, stops["stop_polygon_type_fid"], stops.geometry):
        kind_id = gp.fid(kind, "stop_polygons.stop_polygon_type_fid", fid)
        net.stop_polygons[str(fid)] = (int(kind_id or 5), _ring(geom))
    return net


def read_map(maps_root: str | Path, location: str) -> RoadNetwork:
    """The map of `location` (a map name, or a log's city alias like `las_vegas`) under `maps_root`."""
    path, name, version = map_path(maps_root, location)
    return read_gpkg(path, name, version)
