"""End to end over the world generator: synthetic town -> nuPlan GPKG (gpkg_writer) -> read_map -> MapAPI."""

import numpy as np
import pytest

from drivefine_core.data.gpkg_reader import read_map
from drivefine_core.data.gpkg_writer import write_gpkg
from drivefine_core.data.map_api import MapAPI
from drivefine_core.data.synthetic.map_gen import generate_map
from drivefine_core.data.synthetic.params import GenerateParams


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    smap = generate_map(GenerateParams(grid_nodes_x=3, grid_nodes_y=3, seed=1))
    root = tmp_path_factory.mktemp("maps")
    write_gpkg(smap.network, root, smap.walkways)
    return smap.network, read_map(root, smap.network.location)


def test_network_survives_the_gpkg_round_trip(town):
    net, back = town
    assert (back.location, back.version, back.crs) == (net.location, net.version, net.crs)
    assert set(back.lanes) == set(net.lanes) and set(back.lane_connectors) == set(net.lane_connectors)
    for k, lane in net.lanes.items():
        got = back.lanes[k]
        assert (got.roadblock_id, got.lane_index) == (lane.roadblock_id, lane.lane_index)
        np.testing.assert_allclose(got.centerline, lane.centerline, atol=1e-6)
        assert got.width == pytest.approx(lane.width, abs=0.05)
        assert got.speed_limit_mps == pytest.approx(lane.speed_limit_mps)
    for k, conn in net.lane_connectors.items():
        got = back.lane_connectors[k]
        assert (got.from_lane_id, got.to_lane_id, got.roadblock_connector_id, got.intersection_id) == (
            conn.from_lane_id, conn.to_lane_id, conn.roadblock_connector_id, conn.intersection_id)
        assert (got.has_traffic_light, got.traffic_light_stop_line_ids) == (
            conn.has_traffic_light, conn.traffic_light_stop_line_ids)
        np.testing.assert_allclose(got.centerline, conn.centerline, atol=1e-6)
    for k, block in net.roadblocks.items():
        assert back.roadblocks[k].lane_ids == block.lane_ids
    for k, rc in net.roadblock_connectors.items():
        got = back.roadblock_connectors[k]
        assert (got.from_roadblock_id, got.to_roadblock_id, got.intersection_id) == (
            rc.from_roadblock_id, rc.to_roadblock_id, rc.intersection_id)
        assert sorted(got.lane_connector_ids) == sorted(rc.lane_connector_ids)
    assert set(back.intersections) == set(net.intersections) and set(back.carparks) == set(net.carparks)
    assert set(back.stop_polygons) == set(net.stop_polygons) and set(back.crosswalks) == set(net.crosswalks)


def test_route_through_a_junction(town):
    _, back = town
    api = MapAPI(back)
    # lane -> connector -> next lane, as a 3-block route from the start of the lane
    conn = next(c for c in back.lane_connectors.values() if c.from_lane_id in back.lanes and c.to_lane_id in back.lanes)
    first, last = back.lanes[conn.from_lane_id], back.lanes[conn.to_lane_id]
    route = [first.roadblock_id, conn.roadblock_connector_id, last.roadblock_id]
    d = first.centerline[1] - first.centerline[0]
    start = np.array([*first.centerline[0], np.arctan2(d[1], d[0])])
    plan = api.route_plan(route, start)
    assert plan.complete and plan.lane_path[0] == first.id and plan.lane_path[-1] in back.roadblocks[last.roadblock_id].lane_ids
    assert np.allclose(plan.centerline[0], first.centerline[0])
    # every drivable crop around a lane point contains the lane's own roadblock
    mid = first.centerline[len(first.centerline) // 2]
    assert ("roadblock", first.roadblock_id) in {(m.layer, m.id) for m in api.drivable_polygons(mid, 5.0)}
    assert first.id in api.lanes_at(mid[None])[0]
