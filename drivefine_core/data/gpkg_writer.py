"""RoadNetwork -> nuPlan map on disk: `<maps_root>/<location>/<version>/map.gpkg` + `nuplan-maps-v1.0.json`.

Layer and column names follow nuplan-devkit's GPKG maps (docs/nuplan-map-format.md). Geometry is
stored in the projected CRS and the `meta` table names it as projectedCoordSystem, so a reader that
converts with `to_crs(projectedCoordSystem)` gets the coordinates back unchanged. Fids of the
semantic layers are the RoadNetwork ids; helper layers (baseline paths, connector polygons,
boundaries, road segments) get fresh fids above every id in use, so fids stay unique across layers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from shapely.geometry import LineString, Polygon

from drivefine_core.data.road_network import RoadNetwork

MAPS_VERSION = "nuplan-maps-v1.0"
BOUNDARY_TYPE_LANE_DIVIDER = 2  # nuPlan boundary_type_fid; the devkit does not interpret it


def _left_offset(xy: np.ndarray, d: float) -> np.ndarray:
    t = np.gradient(xy, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    return xy + d * np.stack([-t[:, 1], t[:, 0]], axis=1)


def _polygon(ring: np.ndarray | None, line: np.ndarray, width: float) -> Polygon:
    if ring is not None:
        return Polygon(ring)
    return LineString(line).buffer(width / 2, cap_style="flat")


def _fid(element_id: str, field: str) -> int:
    try:
        return int(element_id)
    except (TypeError, ValueError):
        raise ValueError(f"gpkg_writer: {field} id {element_id!r} is not an integer string (GPKG fids are ints)") from None


def _optional_fid(element_id: str | None, field: str) -> int | None:
    return None if element_id is None else _fid(element_id, field)


LAYER_COLUMNS = {
    "lanes_polygons": ["fid", "lane_fid", "lane_group_fid", "lane_index", "left_boundary_fid", "right_boundary_fid",
                       "speed_limit_mps"],
    "lane_connectors": ["fid", "entry_lane_fid", "exit_lane_fid", "lane_group_connector_fid", "intersection_fid",
                        "speed_limit_mps", "traffic_light_stop_line_fids"],
    "gen_lane_connectors_scaled_width_polygons": ["fid", "lane_connector_fid", "left_boundary_fid",
                                                  "right_boundary_fid"],
    "baseline_paths": ["fid", "lane_fid", "lane_connector_fid"],
    "boundaries": ["fid", "boundary_type_fid"],
    "lane_group_connectors": ["fid", "from_lane_group_fid", "to_lane_group_fid", "intersection_fid"],
    "stop_polygons": ["fid", "stop_polygon_type_fid"],
}


def _frame(name: str, rows: list[dict], geoms: list, crs: str, geom_type: str) -> tuple[gpd.GeoDataFrame, str]:
    # explicit columns so that empty layers still carry the real schema
    df = pd.DataFrame(rows, columns=LAYER_COLUMNS.get(name, ["fid"]))
    for col in df.columns:
        if col.endswith("_fid") or col in ("fid", "lane_index"):
            df[col] = df[col].astype("Int64")
        elif col == "speed_limit_mps":
            df[col] = df[col].astype("float64")
        elif col == "traffic_light_stop_line_fids":
            df[col] = df[col].astype("str")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs), geom_type


def build_layers(net: RoadNetwork, walkways: dict[str, np.ndarray] | None = None) -> dict[str, tuple]:
    """Layer name -> (GeoDataFrame, geometry type) for every vector layer of the map."""
    used = [_fid(i, "element") for layer in (net.lanes, net.lane_connectors, net.roadblocks, net.roadblock_connectors,
                                              net.intersections, net.carparks, net.crosswalks, net.stop_polygons,
                                              walkways or {}) for i in layer]
    used += [_fid(b, "boundary") for ln in net.lanes.values() for b in (ln.left_boundary_id, ln.right_boundary_id) if b]
    next_fid = iter(range(max(used, default=0) + 1, 1 << 62))
    crs = net.crs
    layers: dict[str, tuple] = {}

    rows, geoms, boundaries = [], [], {}
    for ln in net.lanes.values():
        rows.append({"fid": _fid(ln.id, "lane"), "lane_fid": _fid(ln.id, "lane"),
                     "lane_group_fid": _fid(ln.roadblock_id, f"lane {ln.id} roadblock"),
                     "lane_index": ln.lane_index,
                     "left_boundary_fid": _optional_fid(ln.left_boundary_id, f"lane {ln.id} left boundary"),
                     "right_boundary_fid": _optional_fid(ln.right_boundary_id, f"lane {ln.id} right boundary"),
                     "speed_limit_mps": float(ln.speed_limit_mps)})
        geoms.append(_polygon(ln.polygon, ln.centerline, ln.width))
        for bid, side in ((ln.left_boundary_id, 1.0), (ln.right_boundary_id, -1.0)):
            if bid and bid not in boundaries:
                boundaries[bid] = LineString(_left_offset(ln.centerline, side * ln.width / 2))
    layers["lanes_polygons"] = _frame(
        "lanes_polygons", rows, geoms, crs, "Polygon")

    rows, geoms, prow, pgeo = [], [], [], []
    for lc in net.lane_connectors.values():
        rows.append({"fid": _fid(lc.id, "lane connector"),
                     "entry_lane_fid": _fid(lc.to_lane_id, f"lane connector {lc.id} to_lane"),
                     "exit_lane_fid": _fid(lc.from_lane_id, f"lane connector {lc.id} from_lane"),
                     "lane_group_connector_fid": _fid(lc.roadblock_connector_id, f"lane connector {lc.id} roadblock"),
                     "intersection_fid": _optional_fid(lc.intersection_id, f"lane connector {lc.id} intersection"),
                     "speed_limit_mps": float(lc.speed_limit_mps),
                     "traffic_light_stop_line_fids": ",".join(lc.traffic_light_stop_line_ids)})
        geoms.append(LineString(lc.centerline))
        # The devkit reads a connector's left / right boundary from these fids: each gets its own boundaries row,
        # the centreline offset by half the width to either side (same direction as the centreline).
        sides = {}
        for side, sign in (("left", 1.0), ("right", -1.0)):
            bfid = next(next_fid)
            boundaries[str(bfid)] = LineString(_left_offset(np.asarray(lc.centerline, float), sign * lc.width / 2))
            sides[f"{side}_boundary_fid"] = bfid
        prow.append({"fid": next(next_fid), "lane_connector_fid": _fid(lc.id, "lane connector"), **sides})
        pgeo.append(_polygon(lc.polygon, lc.centerline, lc.width))
    layers["lane_connectors"] = _frame(
        "lane_connectors", rows, geoms, crs, "LineString")
    layers["gen_lane_connectors_scaled_width_polygons"] = _frame(
        "gen_lane_connectors_scaled_width_polygons", prow, pgeo, crs, "Polygon")

    rows, geoms = [], []
    for ln in net.lanes.values():
        rows.append({"fid": next(next_fid), "lane_fid": _fid(ln.id, "lane"), "lane_connector_fid": None})
        geoms.append(LineString(ln.centerline))
    for lc in net.lane_connectors.values():
        rows.append({"fid": next(next_fid), "lane_fid": None, "lane_connector_fid": _fid(lc.id, "lane connector")})
        geoms.append(LineString(lc.centerline))
    layers["baseline_paths"] = _frame(
        "baseline_paths", rows, geoms, crs, "LineString")

    layers["boundaries"] = _frame(
        "boundaries", [{"fid": _fid(b, "boundary"), "boundary_type_fid": BOUNDARY_TYPE_LANE_DIVIDER} for b in boundaries],
        list(boundaries.values()), crs, "LineString")
    layers["lane_groups_polygons"] = _frame(
        "lane_groups_polygons", [{"fid": _fid(k, "roadblock")} for k in net.roadblocks],
        [Polygon(r.polygon) for r in net.roadblocks.values()], crs, "Polygon")
    layers["lane_group_connectors"] = _frame(
        "lane_group_connectors", [{"fid": _fid(k, "roadblock connector"),
          "from_lane_group_fid": _fid(r.from_roadblock_id, f"roadblock connector {k} from"),
          "to_lane_group_fid": _fid(r.to_roadblock_id, f"roadblock connector {k} to"),
          "intersection_fid": _optional_fid(r.intersection_id, f"roadblock connector {k} intersection")}
         for k, r in net.roadblock_connectors.items()],
        [Polygon(r.polygon) for r in net.roadblock_connectors.values()], crs, "Polygon")
    layers["intersections"] = _frame(
        "intersections", [{"fid": _fid(k, "intersection")} for k in net.intersections],
        [Polygon(i.polygon) for i in net.intersections.values()], crs, "Polygon")
    layers["stop_polygons"] = _frame(
        "stop_polygons", [{"fid": _fid(k, "stop polygon"), "stop_polygon_type_fid": int(t)} for k, (t, _) in net.stop_polygons.items()],
        [Polygon(p) for _, p in net.stop_polygons.values()], crs, "Polygon")
    for name, polys in (("crosswalks", net.crosswalks), ("walkways", walkways or {}), ("carpark_areas", net.carparks)):
        layers[name] = _frame(name, [{"fid": _fid(k, name)} for k in polys], [Polygon(p) for p in polys.values()],
                              crs, "Polygon")
    layers["road_segments"] = _frame(
        "road_segments", [{"fid": next(next_fid)} for _ in net.roadblocks], [Polygon(r.polygon) for r in net.roadblocks.values()],
        crs, "Polygon")
    layers["generic_drivable_areas"] = _frame(
        "generic_drivable_areas", [{"fid": next(next_fid)} for _ in net.carparks], [Polygon(p) for p in net.carparks.values()], crs, "Polygon")
    return layers


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_gpkg(net: RoadNetwork, maps_root: Path, walkways: dict[str, np.ndarray] | None = None) -> Path:
    """Write one map and register it in `<maps_root>/nuplan-maps-v1.0.json`; returns the gpkg path."""
    maps_root = Path(maps_root)
    out_dir = maps_root / net.location / net.version
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "map.gpkg"
    tmp = out_dir / f".map.tmp-{os.getpid()}.gpkg"
    tmp.unlink(missing_ok=True)
    layers = build_layers(net, walkways)
    try:
        for name, (gdf, geom_type) in layers.items():
            pyogrio.write_dataframe(gdf, tmp, layer=name, driver="GPKG", geometry_type=geom_type, append=False)
        meta = pd.DataFrame({"key": ["projectedCoordSystem", "version", "location"],
                             "value": [net.crs, net.version, net.location]})
        pyogrio.write_dataframe(meta, tmp, layer="meta", driver="GPKG")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)

    index_path = maps_root / f"{MAPS_VERSION}.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[net.location] = {
        "version": net.version,
        "layers": {name: {"geometry_type": gt, "count": len(gdf)} for name, (gdf, gt) in layers.items()},
    }
    _write_json_atomic(index_path, index)
    return final
