import json

import numpy as np
import pyogrio
import pytest
from shapely.geometry import LineString, Polygon

from drivefine_core.data.gpkg_writer import write_gpkg
from drivefine_core.data.synthetic.map_gen import generate_map
from drivefine_core.data.synthetic.params import GenerateParams

COLUMNS = {
    "lanes_polygons": {"lane_fid", "lane_group_fid", "lane_index", "left_boundary_fid", "right_boundary_fid",
                       "speed_limit_mps"},
    "lane_connectors": {"entry_lane_fid", "exit_lane_fid", "lane_group_connector_fid", "intersection_fid",
                        "speed_limit_mps", "traffic_light_stop_line_fids"},
    "gen_lane_connectors_scaled_width_polygons": {"lane_connector_fid", "left_boundary_fid", "right_boundary_fid"},
    "baseline_paths": {"lane_fid", "lane_connector_fid"},
    "boundaries": {"boundary_type_fid"},
    "lane_groups_polygons": set(),
    "lane_group_connectors": {"from_lane_group_fid", "to_lane_group_fid", "intersection_fid"},
    "intersections": set(),
    "stop_polygons": {"stop_polygon_type_fid"},
    "crosswalks": set(),
    "walkways": set(),
    "carpark_areas": set(),
    "road_segments": set(),
    "generic_drivable_areas": set(),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    smap = generate_map(GenerateParams(seed=5, grid_nodes_x=3, grid_nodes_y=3, edge_removal_fraction=0.0))
    root = tmp_path_factory.mktemp("maps")
    path = write_gpkg(smap.network, root, smap.walkways)
    return smap, root, path


def test_layout_layers_and_columns(written):
    smap, root, path = written
    net = smap.network
    assert path == root / net.location / net.version / "map.gpkg"
    index = json.loads((root / "nuplan-maps-v1.0.json").read_text())
    assert index[net.location]["version"] == net.version
    layers = dict(pyogrio.list_layers(path))
    for name, cols in COLUMNS.items():
        assert name in layers, name
        info = pyogrio.read_info(path, layer=name)
        assert cols <= set(info["fields"]), (name, cols - set(info["fields"]))
    meta = pyogrio.read_dataframe(path, layer="meta")
    assert dict(zip(meta["key"], meta["value"]))["projectedCoordSystem"] == net.crs
    assert not list(path.parent.glob(".*tmp*"))


def test_values_and_fids(written):
    smap, _, path = written
    net = smap.network
    lanes = pyogrio.read_dataframe(path, layer="lanes_polygons", fid_as_index=True)
    assert sorted(map(str, lanes.index)) == sorted(net.lanes)
    some = next(iter(net.lanes.values()))
    row = lanes.loc[int(some.id)]
    assert str(row["lane_group_fid"]) == some.roadblock_id and row["lane_index"] == some.lane_index
    assert row.geometry.equals_exact(Polygon(some.polygon), 1e-6)
    conns = pyogrio.read_dataframe(path, layer="lane_connectors", fid_as_index=True)
    for lc in list(net.lane_connectors.values())[:20]:
        r = conns.loc[int(lc.id)]
        # nuPlan naming: a connector leaves its exit lane and enters its entry lane
        assert str(r["exit_lane_fid"]) == lc.from_lane_id and str(r["entry_lane_fid"]) == lc.to_lane_id
        assert r["traffic_light_stop_line_fids"] == ",".join(lc.traffic_light_stop_line_ids)
        np.testing.assert_allclose(np.asarray(r.geometry.coords), lc.centerline, atol=1e-6)
    paths = pyogrio.read_dataframe(path, layer="baseline_paths", fid_as_index=True)
    assert paths["lane_fid"].notna().sum() == len(net.lanes)
    assert paths["lane_connector_fid"].notna().sum() == len(net.lane_connectors)
    all_fids = []
    for name in COLUMNS:
        all_fids += list(pyogrio.read_dataframe(path, layer=name, fid_as_index=True, read_geometry=False).index)
    assert len(all_fids) == len(set(all_fids)), "fids must be unique across layers"
    stops = pyogrio.read_dataframe(path, layer="stop_polygons", fid_as_index=True)
    assert set(stops["stop_polygon_type_fid"]) == {2}


def test_empty_layers_keep_their_schema(tmp_path):
    smap = generate_map(GenerateParams(seed=1, grid_nodes_x=2, grid_nodes_y=2))
    assert not smap.network.stop_polygons  # a ring of corners has no signals
    path = write_gpkg(smap.network, tmp_path)
    assert "stop_polygon_type_fid" in pyogrio.read_info(path, layer="stop_polygons")["fields"]
    assert pyogrio.read_info(path, layer="walkways")["features"] == 0


def test_every_connector_boundary_resolves(written):
    # nuplan-devkit's LaneConnector.left_boundary / right_boundary look these fids up in `boundaries`.
    smap, _, path = written
    net = smap.network
    polys = pyogrio.read_dataframe(path, layer="gen_lane_connectors_scaled_width_polygons", fid_as_index=True)
    bounds = pyogrio.read_dataframe(path, layer="boundaries", fid_as_index=True)
    lanes = pyogrio.read_dataframe(path, layer="lanes_polygons", fid_as_index=True)
    assert len(polys) == len(net.lane_connectors) > 0
    for col in ("left_boundary_fid", "right_boundary_fid"):
        assert polys[col].notna().all() and lanes[col].notna().all(), col
        assert set(polys[col].astype(int)) <= set(bounds.index) and set(lanes[col].astype(int)) <= set(bounds.index)
    for _, row in polys.iterrows():
        lc = net.lane_connectors[str(int(row["lane_connector_fid"]))]
        left, right = bounds.loc[int(row["left_boundary_fid"])].geometry, bounds.loc[int(row["right_boundary_fid"])].geometry
        start, nxt = np.asarray(lc.centerline[0], float), np.asarray(lc.centerline[1], float)
        normal = np.array([-(nxt - start)[1], (nxt - start)[0]])  # points to the left of the travel direction
        # each boundary runs along its side of the connector, half a width from the centreline, same direction
        for line, sign in ((left, 1.0), (right, -1.0)):
            first = np.asarray(line.coords[0])
            assert np.dot(first - start, normal) * sign > 0
            assert abs(np.linalg.norm(first - start) - lc.width / 2) < 1e-6
            assert line.hausdorff_distance(LineString(lc.centerline)) == pytest.approx(lc.width / 2, abs=0.05 * lc.width)
