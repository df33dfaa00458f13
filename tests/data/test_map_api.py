import numpy as np
import pytest
from tests.data.tiny_map import ORIGIN, write_tiny_map

from drivefine_core.data.gpkg_reader import read_map
from drivefine_core.data.map_api import MapAPI


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps")
    write_tiny_map(root)
    return MapAPI(read_map(root, "las_vegas"))


def p(x, y, heading=0.0):
    return np.array([ORIGIN[0] + x, ORIGIN[1] + y, heading])


def test_drivable_crop_uses_square_intersects(api):
    # square of half-side 5 around (25, 0) touches roadblock 10 only; the car park starts at y = 10
    assert [(m.layer, m.id) for m in api.drivable_polygons(p(25, 0)[:2], 5.0)] == [("roadblock", "10")]
    got = {(m.layer, m.id) for m in api.drivable_polygons(p(25, 0)[:2], 12.0)}
    assert got == {("roadblock", "10"), ("carpark", "70")}
    # a square reaches further than a circle: roadblock 60's corner (61.75, 70) is 12.96 m from (70, 80)
    # but within 10.5 m along each axis
    assert [m.id for m in api.drivable_polygons(p(70, 80)[:2], 10.5)] == ["60"]
    assert api.drivable_polygons(p(70, 80)[:2], 9.9) == []
    assert api.drivable_polygons(p(500, 500)[:2], 10.0) == []


def test_lane_queries(api):
    lanes = api.lane_polygons(p(60, 0)[:2], 1.0)
    assert {(m.layer, m.id) for m in lanes} == {("lane_connector", "5"), ("lane_connector", "6")}
    assert api.lanes_near(p(25, -1.5)[:2], 2.0) == ["2", "1"]  # nearest centerline first
    assert api.lane_polygons(p(25, 0)[:2], 1.0)[0].polygon.area == pytest.approx(50 * 3.5)


def test_relations(api):
    assert api.roadblock_of("6") == "30" and api.roadblock_of("3") == "20"
    assert api.lanes_of_roadblock("10") == ["1", "2"] and api.lanes_of_roadblock("31") == ["8"]
    assert api.speed_limit("1") == pytest.approx(15.6) and api.speed_limit("4") is None
    assert api.traffic_light_connectors() == ["5"]
    np.testing.assert_allclose(api.centerline("2") - ORIGIN, [[0, -1.75], [50, -1.75]], atol=1e-6)
    assert api.successors("1") == ["5", "8"]
    with pytest.raises(KeyError, match="no lane or lane connector with id '99'"):
        api.speed_limit("99")


def test_in_intersection(api):
    assert api.in_intersection(p(60, 5)[:2]) and not api.in_intersection(p(25, 0)[:2])
    inside = api.points_in_intersection(np.array([p(55, 0)[:2], p(80, 0)[:2], p(65, 19)[:2]]))
    assert inside.tolist() == [True, False, True]


def test_points_in_lanes_and_drivable(api):
    pts = np.array([p(25, 1)[:2], p(25, -1)[:2], p(60, 1)[:2], p(20, 25)[:2], p(40, 30)[:2]])
    assert [sorted(x) for x in api.lanes_at(pts)] == [["1"], ["2"], ["5"], [], []]
    assert api.on_drivable(pts).tolist() == [True, True, True, True, False]  # (20, 25) is in the car park


def test_route_lane_ids(api):
    assert api.route_lane_ids(["10", "30", "20"]) == ["1", "2", "5", "6", "3", "4"]
    assert api.route_lane_ids(["unknown", "60"]) == ["7"]


def test_route_centerline_straight_from_right_lane(api):
    line = api.route_centerline(["10", "30", "20"], p(5, -1.6))
    np.testing.assert_allclose(line - ORIGIN, [[0, -1.75], [50, -1.75], [50, -1.75], [70, -1.75],
                                               [70, -1.75], [120, -1.75]], atol=1e-6)  # joints repeated


def test_route_centerline_left_turn(api):
    plan = api.route_plan(["10", "31", "60"], p(5, 1.8))
    assert plan.lane_path == ["1", "8", "7"] and plan.complete
    assert np.allclose(plan.centerline[-1] - ORIGIN, [60, 70], atol=1e-6)
    seg = np.linalg.norm(np.diff(plan.centerline, axis=0), axis=1)
    assert np.sum(seg == 0) == len(plan.lane_path) - 1  # each joint repeats its point, as NAVSIM's centreline


def test_route_unreachable_from_start_lane_stops_at_deepest(api):
    # lane 2 has no connector into roadblock connector 31: the path ends with lane 2 itself
    plan = api.route_plan(["10", "31", "60"], p(5, -1.8))
    assert plan.lane_path == ["2"] and not plan.complete


def test_route_repair(api):
    # a gap (10 -> 20 without 30) is closed by BFS
    assert api.route_plan(["10", "20"], p(5, 1.75)).roadblock_ids == ["10", "30", "20"]
    # the ego already in roadblock 20: earlier route blocks are cut
    plan = api.route_plan(["10", "30", "20"], p(80, 1.75))
    assert plan.roadblock_ids == ["20"] and plan.lane_path == ["3"]
    # the route starts ahead of the ego: the ego's roadblock is joined by BFS
    plan = api.route_plan(["60"], p(10, 1.75))
    assert plan.roadblock_ids == ["10", "31", "60"] and plan.lane_path == ["1", "8", "7"]
    # a pose far from every lane still starts on the closest route lane, as PDM does
    assert api.route_plan(["10", "30", "20"], p(10, -60)).lane_path == ["2", "6", "4"]
    # a route of unknown ids gives an empty plan
    assert api.route_plan(["nope"], p(500, 500)).lane_path == []
