import json

import numpy as np
import pytest
from tests.data.tiny_map import CENTERLINES, CRS, LOCATION, ORIGIN, VERSION, write_tiny_map

from drivefine_core.data.errors import MapFormatError
from drivefine_core.data.gpkg_reader import read_map


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps")
    write_tiny_map(root)
    return read_map(root, "las_vegas")  # the logs' alias for us-nv-las-vegas-strip


def test_round_trip_geometry_in_projected_crs(tiny):
    assert (tiny.location, tiny.version, tiny.crs) == (LOCATION, VERSION, CRS)
    assert sorted(tiny.lanes) == ["1", "2", "3", "4", "7"] and sorted(tiny.lane_connectors) == ["5", "6", "8"]
    for element_id, local in CENTERLINES.items():
        # stored in EPSG:4326, read back in UTM: sub-millimetre agreement
        np.testing.assert_allclose(tiny.centerline(element_id) - ORIGIN, local, atol=1e-6)
    np.testing.assert_allclose(tiny.roadblocks["20"].polygon.min(axis=0) - ORIGIN, [70, -3.5], atol=1e-6)
    assert tiny.lanes["1"].width == pytest.approx(3.5, abs=1e-6)
    assert tiny.lane_connectors["5"].width == pytest.approx(3.5, abs=1e-6)


def test_relations(tiny):
    c5 = tiny.lane_connectors["5"]
    assert (c5.from_lane_id, c5.to_lane_id, c5.roadblock_connector_id) == ("1", "3", "30")
    assert c5.has_traffic_light and c5.traffic_light_stop_line_ids == ["50"] and c5.intersection_id == "40"
    c8 = tiny.lane_connectors["8"]
    assert (c8.from_lane_id, c8.to_lane_id, c8.intersection_id, c8.has_traffic_light) == ("1", "7", None, False)
    assert not tiny.lane_connectors["6"].has_traffic_light
    assert tiny.roadblocks["10"].lane_ids == ["1", "2"]  # ordered by lane_index, leftmost first
    assert tiny.roadblock_connectors["30"].lane_connector_ids == ["5", "6"]
    rc = tiny.roadblock_connectors["31"]
    assert (rc.from_roadblock_id, rc.to_roadblock_id, rc.intersection_id) == ("10", "60", "40")
    assert tiny.lanes["2"].lane_index == 1 and tiny.lanes["2"].roadblock_id == "10"
    assert (tiny.lanes["3"].left_boundary_id, tiny.lanes["3"].right_boundary_id) == ("903", "953")
    assert tiny.lanes["3"].speed_limit_mps == pytest.approx(13.4) and np.isnan(tiny.lanes["4"].speed_limit_mps)
    assert sorted(tiny.successors("1")) == ["5", "8"] and tiny.successors("5") == ["3"]
    assert list(tiny.carparks) == ["70"] and list(tiny.crosswalks) == ["80"]
    assert tiny.stop_polygons["50"][0] == 2 and list(tiny.intersections) == ["40"]


@pytest.mark.parametrize(
    "drop_layer, drop_column, field",
    [
        ("baseline_paths", None, "baseline_paths"),
        ("carpark_areas", None, "carpark_areas"),
        (None, ("lane_connectors", "exit_lane_fid"), "lane_connectors.exit_lane_fid"),
        (None, ("lanes_polygons", "lane_group_fid"), "lanes_polygons.lane_group_fid"),
    ],
)
def test_missing_layer_or_column(tmp_path, drop_layer, drop_column, field):
    path = write_tiny_map(tmp_path, drop_layer=drop_layer, drop_column=drop_column)
    with pytest.raises(MapFormatError) as info:
        read_map(tmp_path, LOCATION)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_unknown_location_and_missing_index(tmp_path):
    with pytest.raises(MapFormatError, match="maps index not found"):
        read_map(tmp_path, LOCATION)
    write_tiny_map(tmp_path)
    with pytest.raises(MapFormatError, match="unknown map location"):
        read_map(tmp_path, "boston")
    (tmp_path / "nuplan-maps-v1.0.json").write_text(json.dumps({LOCATION: {"layers": {}}}))
    with pytest.raises(MapFormatError, match="version"):
        read_map(tmp_path, LOCATION)
