import numpy as np
from shapely.geometry import Point, Polygon

from drivefine_core.data.synthetic.map_gen import generate_map
from drivefine_core.data.synthetic.params import GenerateParams

SMALL = GenerateParams(seed=3, grid_nodes_x=3, grid_nodes_y=3, edge_removal_fraction=0.0)


def _all_ids(net):
    ids = []
    for layer in (net.lanes, net.lane_connectors, net.roadblocks, net.roadblock_connectors, net.intersections,
                  net.carparks, net.crosswalks, net.stop_polygons):
        ids += list(layer)
    for lane in net.lanes.values():
        ids += [lane.left_boundary_id, lane.right_boundary_id]
    return ids


def test_ids_unique_across_layers_and_integer_strings():
    net = generate_map(SMALL).network
    layer_ids = [i for layer in (net.lanes, net.lane_connectors, net.roadblocks, net.roadblock_connectors,
                                 net.intersections, net.carparks, net.crosswalks, net.stop_polygons) for i in layer]
    assert len(layer_ids) == len(set(layer_ids))
    assert all(i.isdigit() for i in _all_ids(net))
    bounds = {b for lane in net.lanes.values() for b in (lane.left_boundary_id, lane.right_boundary_id)}
    assert not bounds & set(layer_ids)


def test_deterministic_by_seed():
    a, b = generate_map(SMALL).network, generate_map(SMALL).network
    c = generate_map(SMALL.model_copy(update={"seed": 4})).network
    assert list(a.lanes) == list(b.lanes)
    for k in a.lanes:
        np.testing.assert_array_equal(a.lanes[k].centerline, b.lanes[k].centerline)
    ka = next(iter(a.lanes))
    assert ka not in c.lanes or not np.array_equal(a.lanes[ka].centerline, c.lanes[ka].centerline)


def test_graph_is_closed_and_geometry_consistent():
    smap = generate_map(SMALL)
    net = smap.network
    xy = np.concatenate([lane.centerline for lane in net.lanes.values()])
    assert 6.0e5 < xy[:, 0].min() and xy[:, 1].min() > 3.9e6
    for lane in net.lanes.values():
        assert net.successors(lane.id), f"lane {lane.id} is a dead end"
        assert lane.polygon is not None
        poly = Polygon(lane.polygon)
        assert poly.is_valid
        assert poly.buffer(0.05).contains(Point(lane.centerline[len(lane.centerline) // 2]))
        assert lane.id in net.roadblocks[lane.roadblock_id].lane_ids
    for lc in net.lane_connectors.values():
        # connectors join lane ends to lane starts without gaps
        assert np.linalg.norm(lc.centerline[0] - net.lanes[lc.from_lane_id].centerline[-1]) < 1e-6
        assert np.linalg.norm(lc.centerline[-1] - net.lanes[lc.to_lane_id].centerline[0]) < 1e-6
        assert lc.id in net.roadblock_connectors[lc.roadblock_connector_id].lane_connector_ids
        assert Polygon(net.intersections[lc.intersection_id].polygon).buffer(0.1).contains(
            Polygon(lc.polygon))
        for sid in lc.traffic_light_stop_line_ids:
            assert net.stop_polygons[sid][0] == 2
    lanes_per_rb = {len(rb.lane_ids) for rb in net.roadblocks.values()}
    assert lanes_per_rb <= {1, 2, 3} and len(lanes_per_rb) >= 2
    assert any(lc.has_traffic_light for lc in net.lane_connectors.values())
    assert net.crosswalks and net.carparks and smap.signals
    # a 4-way junction offers straight, left and right from each approach
    out_per_rb: dict[str, int] = {}
    for rbc in net.roadblock_connectors.values():
        out_per_rb[rbc.from_roadblock_id] = out_per_rb.get(rbc.from_roadblock_id, 0) + 1
    assert max(out_per_rb.values()) == 3 and min(out_per_rb.values()) >= 1
