"""A hand-written nuPlan-format map (docs/nuplan-map-format.md), stored in EPSG:4326 like real maps.

Local layout (metres, then shifted to UTM zone 11 near Las Vegas):

    roadblock 10: lanes 1 (y=+1.75, left, index 0) and 2 (y=-1.75, index 1), x 0..50, heading +x
    roadblock 20: lanes 3 (y=+1.75) and 4 (y=-1.75), x 70..120
    roadblock 60: lane 7, heading +y, x=60, y 20..70
    roadblock connector 30 (10 -> 20, intersection 40): connectors 5 (1 -> 3, traffic light 50), 6 (2 -> 4)
    roadblock connector 31 (10 -> 60, intersection 40): connector 8 (1 -> 7, left turn)
    carpark 70, crosswalk 80, stop polygon 50 (traffic light)
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from shapely.geometry import LineString, Polygon

ORIGIN = np.array([664000.0, 3997000.0])
CRS = "EPSG:32611"
LOCATION, VERSION = "us-nv-las-vegas-strip", "9.15.1915"


def g(coords):
    return np.asarray(coords, dtype=float) + ORIGIN


def _rect(x0, y0, x1, y1):
    return Polygon(g([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))


def _line(pts):
    return LineString(g(pts))


def _left_turn(n=9):
    # quarter circle from (50, 1.75) heading +x to (60, 11.75) heading +y, centre (50, 11.75), r = 10
    a = np.linspace(-np.pi / 2, 0, n)
    return np.stack([50 + 10 * np.cos(a), 11.75 + 10 * np.sin(a)], axis=1)


CENTERLINES = {
    "1": np.array([[0, 1.75], [25, 1.75], [50, 1.75]]),
    "2": np.array([[0, -1.75], [50, -1.75]]),
    "3": np.array([[70, 1.75], [120, 1.75]]),
    "4": np.array([[70, -1.75], [120, -1.75]]),
    "7": np.array([[60, 20], [60, 70]]),
    "5": np.array([[50, 1.75], [70, 1.75]]),
    "6": np.array([[50, -1.75], [70, -1.75]]),
    "8": np.concatenate([_left_turn(), [[60, 20]]]),
}


def _frame(rows, geoms):
    df = pd.DataFrame(rows)
    for col in df.columns:
        if col.endswith("_fid") or col in ("fid", "lane_index"):
            df[col] = df[col].astype("Int64")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)


def layers() -> dict[str, gpd.GeoDataFrame]:
    lane_rows = [
        (1, 10, 0, _rect(0, 0, 50, 3.5), 15.6),
        (2, 10, 1, _rect(0, -3.5, 50, 0), 15.6),
        (3, 20, 0, _rect(70, 0, 120, 3.5), 13.4),
        (4, 20, 1, _rect(70, -3.5, 120, 0), None),  # NULL speed limit
        (7, 60, 0, _rect(58.25, 20, 61.75, 70), 11.2),
    ]
    out = {
        "lanes_polygons": _frame(
            [{"fid": f, "lane_fid": f, "lane_group_fid": rb, "lane_index": i, "left_boundary_fid": 900 + f,
              "right_boundary_fid": 950 + f, "speed_limit_mps": v} for f, rb, i, _, v in lane_rows],
            [p for *_, p, _ in lane_rows],
        ),
        "lane_connectors": _frame(
            [
                # the devkit's columns: a connector leaves exit_lane_fid and enters entry_lane_fid
                {"fid": 5, "exit_lane_fid": 1, "entry_lane_fid": 3, "lane_group_connector_fid": 30,
                 "intersection_fid": 40, "speed_limit_mps": 13.4, "traffic_light_stop_line_fids": "50"},
                {"fid": 6, "exit_lane_fid": 2, "entry_lane_fid": 4, "lane_group_connector_fid": 30,
                 "intersection_fid": 40, "speed_limit_mps": 13.4, "traffic_light_stop_line_fids": ""},
                {"fid": 8, "exit_lane_fid": 1, "entry_lane_fid": 7, "lane_group_connector_fid": 31,
                 "intersection_fid": None, "speed_limit_mps": 8.0, "traffic_light_stop_line_fids": None},
            ],
            [_line(CENTERLINES[k]) for k in ("5", "6", "8")],
        ),
        "gen_lane_connectors_scaled_width_polygons": _frame(
            [{"fid": 205, "lane_connector_fid": 5}, {"fid": 206, "lane_connector_fid": 6},
             {"fid": 208, "lane_connector_fid": 8}],
            [_rect(50, 0, 70, 3.5), _rect(50, -3.5, 70, 0), _line(CENTERLINES["8"]).buffer(1.75, cap_style="flat")],
        ),
        "baseline_paths": _frame(
            [{"fid": 100 + int(k), "lane_fid": int(k) if k in "12347" else None,
              "lane_connector_fid": None if k in "12347" else int(k)} for k in CENTERLINES],
            [_line(v) for v in CENTERLINES.values()],
        ),
        "lane_groups_polygons": _frame(
            [{"fid": 10}, {"fid": 20}, {"fid": 60}],
            [_rect(0, -3.5, 50, 3.5), _rect(70, -3.5, 120, 3.5), _rect(58.25, 20, 61.75, 70)],
        ),
        "lane_group_connectors": _frame(
            [{"fid": 30, "from_lane_group_fid": 10, "to_lane_group_fid": 20, "intersection_fid": 40},
             {"fid": 31, "from_lane_group_fid": 10, "to_lane_group_fid": 60, "intersection_fid": 40}],
            [_rect(50, -3.5, 70, 3.5), _line(CENTERLINES["8"]).buffer(1.75, cap_style="flat")],
        ),
        "intersections": _frame([{"fid": 40}], [_rect(50, -3.5, 70, 20)]),
        "carpark_areas": _frame([{"fid": 70}], [_rect(0, 10, 30, 40)]),
        "crosswalks": _frame([{"fid": 80}], [_rect(45, -3.5, 48, 3.5)]),
        "stop_polygons": _frame([{"fid": 50, "stop_polygon_type_fid": 2}], [_rect(48, 0, 50, 3.5)]),
    }
    return out


def write_tiny_map(maps_root: Path, drop_layer: str | None = None, drop_column: tuple[str, str] | None = None) -> Path:
    path = maps_root / LOCATION / VERSION / "map.gpkg"
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, gdf in layers().items():
        if name == drop_layer:
            continue
        if drop_column and drop_column[0] == name:
            gdf = gdf.drop(columns=[drop_column[1]])
        pyogrio.write_dataframe(gdf.to_crs("EPSG:4326"), path, layer=name, driver="GPKG")
    with sqlite3.connect(path) as db:  # a plain table, as in the real maps
        db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("projectedCoordSystem", CRS),
                                                          ("geographicCoordSystem", "EPSG:4326")])
    (maps_root / "nuplan-maps-v1.0.json").write_text(json.dumps({LOCATION: {"version": VERSION, "layers": {}}}))
    return path
