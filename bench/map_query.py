"""Map query speed: STRtree crop of 100 m around a pose vs a brute-force scan of every polygon.

Builds a synthetic town (world generator), writes it as nuPlan GPKG, reads it back with the reader
(the same path real maps take) and times, in one run:
  - read_map and MapAPI construction,
  - drivable + lane polygon crops (square half-side 100 m) at random poses on lanes,
  - the same crops by testing every polygon (ratio = brute / indexed),
  - route_centerline over a 3-roadblock route.

    .venv/bin/python bench/map_query.py [--grid 16] [--crops 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

from drivefine_core.data.gpkg_reader import read_map
from drivefine_core.data.gpkg_writer import write_gpkg
from drivefine_core.data.map_api import MapAPI
from drivefine_core.data.synthetic.map_gen import generate_map
from drivefine_core.data.synthetic.params import GenerateParams


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=16, help="intersections per side of the synthetic grid")
    ap.add_argument("--crops", type=int, default=300)
    ap.add_argument("--radius", type=float, default=100.0)
    args = ap.parse_args()

    smap = generate_map(GenerateParams(grid_nodes_x=args.grid, grid_nodes_y=args.grid, seed=3))
    with tempfile.TemporaryDirectory() as tmp:
        write_gpkg(smap.network, Path(tmp))
        t0 = time.perf_counter()
        net = read_map(tmp, smap.network.location)
        t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    api = MapAPI(net)
    t_build = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    lane_ids = sorted(net.lanes)
    poses = []
    for lane_id in rng.choice(lane_ids, size=args.crops):
        line = net.lanes[lane_id].centerline
        k = int(rng.integers(0, len(line) - 1))
        d = line[k + 1] - line[k]
        poses.append((line[k, 0], line[k, 1], float(np.arctan2(d[1], d[0])), lane_id))

    t0 = time.perf_counter()
    n_indexed = 0
    for x, y, _, _ in poses:
        n_indexed += len(api.drivable_polygons(np.array([x, y]), args.radius))
        n_indexed += len(api.lane_polygons(np.array([x, y]), args.radius))
    t_indexed = (time.perf_counter() - t0) / len(poses)

    layers = (api._drivable, api._lanes)  # noqa: SLF001 - bench only
    t0 = time.perf_counter()
    n_brute = 0
    r = args.radius
    for x, y, _, _ in poses:  # the same output (MapPolygon lists), found by testing every polygon
        square = shapely.box(x - r, y - r, x + r, y + r)
        for layer in layers:
            n_brute += len(layer.polygons(np.flatnonzero(shapely.intersects(layer.geoms, square))))
    t_brute = (time.perf_counter() - t0) / len(poses)
    assert n_brute == n_indexed, (n_brute, n_indexed)

    t0 = time.perf_counter()
    routes = 0
    for x, y, h, lane_id in poses[:100]:
        block = net.lanes[lane_id].roadblock_id
        route = [block]
        for _ in range(4):
            nxt = api._graph.block_successors.get(route[-1], [])  # noqa: SLF001 - bench only
            if not nxt:
                break
            route.append(nxt[0])
        routes += len(api.route_centerline(route, np.array([x, y, h]))) > 0
    t_route = (time.perf_counter() - t0) / min(100, len(poses))

    print(f"map: {len(net.lanes)} lanes, {len(net.lane_connectors)} connectors, {len(net.roadblocks)} roadblocks, "
          f"{len(net.roadblock_connectors)} roadblock connectors, {len(net.intersections)} intersections")
    print(f"read_map (GPKG -> RoadNetwork): {t_read * 1e3:.1f} ms; MapAPI build: {t_build * 1e3:.1f} ms")
    print(f"crop {r:.0f} m (drivable + lanes), {len(poses)} poses, {n_indexed / len(poses):.1f} polygons/crop:")
    print(f"  STRtree: {t_indexed * 1e3:.3f} ms/crop   brute force: {t_brute * 1e3:.3f} ms/crop   "
          f"ratio brute/STRtree: {t_brute / t_indexed:.1f}x")
    print(f"route_centerline: {t_route * 1e3:.3f} ms/route ({routes} non-empty of {min(100, len(poses))})")


if __name__ == "__main__":
    main()
