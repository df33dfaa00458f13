"""Random town on a jittered grid: two-way multi-lane roads with bends, signalised 3/4-way junctions.

Everything is built in local metres around (0, 0), then rotated and shifted to UTM-like magnitudes.
Traffic is right-handed; a roadblock's lanes lie right of the road's reference line (lane 0 next to it).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Polygon

from drivefine_core.data.road_network import (
    Intersection,
    Lane,
    LaneConnector,
    Roadblock,
    RoadblockConnector,
    RoadNetwork,
)
from drivefine_core.data.synthetic import geometry as geo
from drivefine_core.data.synthetic.map_types import (
    CROSSWALK_SPAN_M,
    STOP_SETBACK_M,
    CrosswalkPath,
    SignalPlan,
    SyntheticMap,
    cycle_length_s,
)
from drivefine_core.data.synthetic.params import NUPLAN_LOCATIONS, GenerateParams

ARMS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # E, N, W, S
SPEED_LIMITS = (11.2, 13.4, 15.6)  # 25, 30, 35 mph


class _Ids:
    """Fids as strings of ints, unique across every layer of one map."""

    def __init__(self, start: int) -> None:
        self._next = start

    def __call__(self) -> str:
        self._next += 1
        return str(self._next)


def map_location(params: GenerateParams, index: int) -> str:
    if params.nuplan_city_names:
        return NUPLAN_LOCATIONS[index]
    return f"synthetic-town-s{params.seed}-m{index}"


def map_version(params: GenerateParams) -> str:
    """Under nuPlan's location names the version says the map is synthetic (nuPlan's own look like 9.15.1915)."""
    return f"synthetic-{params.map_version}" if params.nuplan_city_names else params.map_version


def num_written_maps(params: GenerateParams) -> int:
    """Towns written under the maps root: every nuPlan location with nuplan_city_names, else num_maps."""
    return len(NUPLAN_LOCATIONS) if params.nuplan_city_names else params.num_maps


def _grid_edges(nx: int, ny: int, frac: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Grid edges minus a random fraction, keeping every node at degree >= 2 and the graph connected."""
    edges = [(i * ny + j, (i + 1) * ny + j) for i in range(nx - 1) for j in range(ny)]
    edges += [(i * ny + j, i * ny + j + 1) for i in range(nx) for j in range(ny - 1)]
    target = int(round(frac * len(edges)))
    kept = list(edges)
    for k in rng.permutation(len(edges)).tolist():
        if len(edges) - len(kept) >= target:
            break
        trial = [e for e in kept if e != edges[k]]
        deg = np.bincount(np.array(trial).ravel(), minlength=nx * ny)
        if deg.min() >= 2 and _connected(trial, nx * ny):
            kept = trial
    return kept


def _connected(edges: list[tuple[int, int]], n: int) -> bool:
    adj: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    seen, stack = {0}, [0]
    while stack:
        for m in adj[stack.pop()]:
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return len(seen) == n


def _ring(geom: shapely.Geometry) -> np.ndarray:
    if not isinstance(geom, Polygon):
        geom = geom.convex_hull
    return np.asarray(geom.exterior.coords)


def _rect(center: np.ndarray, along: np.ndarray, half_len: float, half_wid: float) -> np.ndarray:
    perp = np.array([-along[1], along[0]])
    c = [center + sa * half_len * along + sw * half_wid * perp for sa, sw in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return np.array(c + [c[0]])


def _add_roadblock(net: RoadNetwork, ids: _Ids, ref: np.ndarray, n: int, w: float, v: float) -> str:
    rb_id = ids()
    bounds = [ids() for _ in range(n + 1)]
    edges = [geo.offset(ref, -i * w) for i in range(n + 1)]
    lane_ids = []
    for i in range(n):
        lane = Lane(
            id=ids(),
            roadblock_id=rb_id,
            lane_index=i,
            centerline=geo.offset(ref, -(i + 0.5) * w),
            width=w,
            speed_limit_mps=v,
            polygon=geo.strip_polygon(edges[i], edges[i + 1]),
            left_boundary_id=bounds[i],
            right_boundary_id=bounds[i + 1],
        )
        net.lanes[lane.id] = lane
        lane_ids.append(lane.id)
    net.roadblocks[rb_id] = Roadblock(rb_id, lane_ids, geo.strip_polygon(edges[0], edges[-1]))
    return rb_id


def _connector_line(a: np.ndarray, b: np.ndarray, straight: bool) -> np.ndarray:
    """Smooth path from the end of lane centerline a to the start of b."""
    p0, p3 = a[-1], b[0]
    u0 = (a[-1] - a[-2]) / np.linalg.norm(a[-1] - a[-2])
    u3 = (b[1] - b[0]) / np.linalg.norm(b[1] - b[0])
    chord = float(np.linalg.norm(p3 - p0))
    k = chord * (1 / 3 if straight else 0.42)
    line = geo.cubic_bezier(p0, p0 + k * u0, p3 - k * u3, p3, max(8, int(chord) + 2))
    return geo.resample(line, 1.0)


def _movement(arm_in: int, arm_out: int) -> str:
    h_in, h_out = -ARMS[arm_in], ARMS[arm_out]
    if h_in @ h_out > 0.5:
        return "straight"
    return "left" if h_in[0] * h_out[1] - h_in[1] * h_out[0] > 0 else "right"


def _build_junction(
    smap: SyntheticMap, ids: _Ids, node: int, center: np.ndarray, mouths: dict, radius: float, w: float,
    rng: np.random.Generator,
) -> None:
    net = smap.network
    arms = sorted(k for (nd, k) in mouths if nd == node)
    signalised = len(arms) >= 3
    inter_id = ids()
    stop_of_lane: dict[str, str] = {}
    if signalised:
        for k in arms:
            for lane_id in net.roadblocks[mouths[(node, k)]["in"]].lane_ids:
                lane = net.lanes[lane_id]
                s = geo.arc_length(lane.centerline)
                along_s = s[-1] - STOP_SETBACK_M + 0.75
                p = np.array([np.interp(along_s, s, lane.centerline[:, i]) for i in range(2)])
                u = lane.centerline[-1] - lane.centerline[-2]
                sid = ids()
                net.stop_polygons[sid] = (2, _rect(p, u / np.linalg.norm(u), 0.75, w / 2))
                stop_of_lane[lane_id] = sid
            d, n = ARMS[k], mouths[(node, k)]["n"]
            perp = np.array([-d[1], d[0]])
            mid = center + d * (radius + sum(CROSSWALK_SPAN_M) / 2)
            cw_id = ids()
            half = (CROSSWALK_SPAN_M[1] - CROSSWALK_SPAN_M[0]) / 2
            net.crosswalks[cw_id] = _rect(mid, d, half, n * w + 0.5)
            walk = "B_straight" if k in (0, 2) else "A_straight"
            smap.crosswalk_paths.append(
                CrosswalkPath(cw_id, mid + perp * (n * w + 1.5), mid - perp * (n * w + 1.5), inter_id, walk)
            )
    groups: dict[str, list[str]] = {p: [] for p in ("A_straight", "A_left", "B_straight", "B_left")}
    hull_pts = []
    for k in arms:
        d, n = ARMS[k], mouths[(node, k)]["n"]
        perp = np.array([-d[1], d[0]])
        hull_pts += [center + d * radius + perp * n * w, center + d * radius - perp * n * w]
    movements: dict[tuple[int, int], tuple[str, list[tuple[int, int]]]] = {}
    for ka in arms:
        nin = len(net.roadblocks[mouths[(node, ka)]["in"]].lane_ids)
        for kb in arms:
            if ka == kb:
                continue
            move = _movement(ka, kb)
            nout = len(net.roadblocks[mouths[(node, kb)]["out"]].lane_ids)
            if move == "straight":
                pairs = sorted({(min(i, nin - 1), min(i, nout - 1)) for i in range(max(nin, nout))})
            elif move == "left":
                pairs = [(0, 0)]
            else:
                pairs = [(nin - 1, nout - 1)]
            movements[(ka, kb)] = (move, pairs)
        # without a straight movement (corners, T stems) every lane must still lead somewhere
        turns = {movements[(ka, kb)][0]: (ka, kb) for kb in arms if kb != ka}
        if "straight" not in turns:
            for i in range(nin):
                if any(i == p[0] for kb in arms if kb != ka for p in movements[(ka, kb)][1]):
                    continue
                key = turns.get("right", turns.get("left"))
                move, pairs = movements[key]
                nout = len(net.roadblocks[mouths[(node, key[1])]["out"]].lane_ids)
                j = max(0, nout - nin + i) if move == "right" else min(i, nout - 1)
                movements[key] = (move, sorted(set(pairs) | {(i, j)}))
    for (ka, kb), (move, pairs) in movements.items():
        rin = net.roadblocks[mouths[(node, ka)]["in"]]
        rout = net.roadblocks[mouths[(node, kb)]["out"]]
        rbc_id = ids()
        polys, lc_ids = [], []
        for i, j in pairs:
            a, b = net.lanes[rin.lane_ids[i]], net.lanes[rout.lane_ids[j]]
            line = _connector_line(a.centerline, b.centerline, move == "straight")
            poly = LineString(line).buffer(w / 2, cap_style="flat")
            lc = LaneConnector(
                id=ids(), roadblock_connector_id=rbc_id, from_lane_id=a.id, to_lane_id=b.id, centerline=line,
                width=w, speed_limit_mps=min(a.speed_limit_mps, b.speed_limit_mps), polygon=_ring(poly),
                intersection_id=inter_id, has_traffic_light=signalised,
                traffic_light_stop_line_ids=[stop_of_lane[a.id]] if signalised else [],
            )
            net.lane_connectors[lc.id] = lc
            lc_ids.append(lc.id)
            polys.append(poly)
            hull_pts += list(lc.polygon)
            axis = "A" if ka in (0, 2) else "B"
            groups[f"{axis}_{'left' if move == 'left' else 'straight'}"].append(lc.id)
        net.roadblock_connectors[rbc_id] = RoadblockConnector(
            rbc_id, rin.id, rout.id, lc_ids, _ring(shapely.unary_union(polys)), inter_id
        )
    net.intersections[inter_id] = Intersection(inter_id, np.asarray(MultiPoint(hull_pts).convex_hull.exterior.coords))
    if signalised:
        smap.signals[inter_id] = SignalPlan(inter_id, float(rng.uniform(0, cycle_length_s())), groups)


def _add_carpark(smap: SyntheticMap, ids: _Ids, candidates: list[tuple[np.ndarray, int]], w: float,
                 rng: np.random.Generator) -> None:
    net = smap.network
    roads = shapely.unary_union([Polygon(r.polygon) for r in net.roadblocks.values()]
                                + [Polygon(i.polygon) for i in net.intersections.values()])
    for idx in rng.permutation(len(candidates)).tolist():
        ref, n = candidates[idx]
        m = len(ref) // 2
        u = ref[m + 1] - ref[m]
        u /= np.linalg.norm(u)
        right = np.array([u[1], -u[0]])
        rect = _rect(ref[m] + right * (n * w + 4.0 + 12.5), u, 18.0, 12.5)
        if not Polygon(rect).intersects(roads):
            net.carparks[ids()] = rect
            return


def _transform(smap: SyntheticMap, angle: float, shift: np.ndarray) -> None:
    f = lambda xy: geo.rotate(np.asarray(xy, float), angle) + shift  # noqa: E731
    net = smap.network
    for lane in net.lanes.values():
        lane.centerline, lane.polygon = f(lane.centerline), f(lane.polygon)
    for lc in net.lane_connectors.values():
        lc.centerline, lc.polygon = f(lc.centerline), f(lc.polygon)
    for group in (net.roadblocks, net.roadblock_connectors, net.intersections):
        for obj in group.values():
            obj.polygon = f(obj.polygon)
    net.carparks = {k: f(v) for k, v in net.carparks.items()}
    net.crosswalks = {k: f(v) for k, v in net.crosswalks.items()}
    net.stop_polygons = {k: (t, f(v)) for k, (t, v) in net.stop_polygons.items()}
    for cw in smap.crosswalk_paths:
        cw.start, cw.end = f(cw.start[None])[0], f(cw.end[None])[0]
    smap.shoulders = [f(s) for s in smap.shoulders]
    smap.sidewalks = [f(s) for s in smap.sidewalks]
    smap.walkways = {k: f(v) for k, v in smap.walkways.items()}
    pts = np.concatenate([r.polygon for r in net.roadblocks.values()] + [i.polygon for i in net.intersections.values()])
    margin = 40.0
    smap.bounds = (pts[:, 0].min() - margin, pts[:, 1].min() - margin, pts[:, 0].max() + margin,
                   pts[:, 1].max() + margin)


def generate_map(params: GenerateParams, index: int = 0) -> SyntheticMap:
    """Map number `index` of the world: deterministic in (params.seed, index)."""
    rng = np.random.default_rng([params.seed, 101, index])
    ids = _Ids(1000)
    w, nmax = params.lane_width_m, params.max_lanes_per_direction
    radius = nmax * w + 5.0
    nx, ny = params.grid_nodes_x, params.grid_nodes_y
    pos = {
        i * ny + j: np.array([i, j], float) * params.block_size_m + rng.uniform(-1, 1, 2) * params.node_jitter_m
        for i in range(nx)
        for j in range(ny)
    }
    net = RoadNetwork(location=map_location(params, index), version=map_version(params), crs=params.crs)
    smap = SyntheticMap(network=net)
    mouths: dict[tuple[int, int], dict] = {}
    carpark_candidates = []
    for a, b in _grid_edges(nx, ny, params.edge_removal_fraction, rng):
        arm_a = 0 if b == a + ny else 1
        d = ARMS[arm_a]
        p0, p3 = pos[a] + radius * d, pos[b] - radius * d
        length = float(np.linalg.norm(p3 - p0))
        ref = geo.cubic_bezier(p0, p0 + d * length / 3, p3 - d * length / 3, p3, int(length / 2) + 2)
        if rng.random() < 0.7:
            t = np.linspace(0.0, 1.0, len(ref))[:, None]
            ref = ref + rng.uniform(-1, 1) * params.road_bend_m * np.sin(np.pi * t) ** 2 * geo.left_normals(ref)
        ref = geo.resample(ref, 1.0)
        n = int(rng.integers(1, nmax + 1))
        v = float(rng.choice(SPEED_LIMITS))
        fwd = _add_roadblock(net, ids, ref, n, w, v)
        bwd = _add_roadblock(net, ids, ref[::-1], n, w, v)
        mouths[(a, arm_a)] = {"out": fwd, "in": bwd, "n": n}
        mouths[(b, arm_a + 2)] = {"out": bwd, "in": fwd, "n": n}
        for r in (ref, ref[::-1]):
            trim = r[8:-8]
            smap.shoulders.append(geo.offset(trim, -(n * w + 0.9)))
            smap.sidewalks.append(geo.offset(trim, -(n * w + 3.0)))
            smap.walkways[ids()] = geo.strip_polygon(geo.offset(trim, -(n * w + 2.0)), geo.offset(trim, -(n * w + 4.0)))
            carpark_candidates.append((r, n))
    for node, center in pos.items():
        _build_junction(smap, ids, node, center, mouths, radius, w, rng)
    _add_carpark(smap, ids, carpark_candidates, w, rng)
    shift = np.asarray(params.utm_origin) + rng.uniform(-1500, 1500, 2)
    _transform(smap, float(rng.uniform(-np.pi, np.pi)), shift)
    return smap
