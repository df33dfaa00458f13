"""Who is on the road in one log: the ego, traffic near its route, slow leaders, cut-ins, pedestrians, statics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from drivefine_core.data.synthetic import geometry as geo
from drivefine_core.data.synthetic.map_types import SyntheticMap
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.routes import STEP_M, Path, PlanItem, Topology, build_path, random_plan, route_plan

EGO_DIMS = (5.176, 2.297, 1.777)  # nuPlan Pacifica: length, width, height
EGO_REAR_TO_CENTER = 1.461
STATIC_DIMS = {
    "traffic_cone": (0.4, 0.4, 0.8),
    "barrier": (1.6, 0.4, 1.0),
    "czone_sign": (0.6, 0.3, 1.6),
    "generic_object": (0.8, 0.8, 0.9),
}

NORMAL, CUT_IN = 0, 1


@dataclass
class Vehicles:
    """Row 0 is the ego. `s` is the arc length of the box centre along the vehicle's path."""

    paths: list[Path]
    dims: np.ndarray  # (N, 3)
    speed_factor: np.ndarray  # (N,) desired speed = factor * speed limit
    slow_speed: np.ndarray  # (N,) desired speed while s < slow_until (slow leaders)
    slow_until: np.ndarray  # (N,)
    s0: np.ndarray
    v0: np.ndarray
    offset0: np.ndarray  # (N,) lateral offset from the path (cut-ins start in the next lane)
    kind: np.ndarray  # (N,) NORMAL or CUT_IN (inactive until the ego reaches its window)
    window: np.ndarray  # (N, 2) ego-path arc length range a cut-in belongs to


@dataclass
class Pedestrians:
    lines: list[np.ndarray]  # polyline each walks on (0.5 m samples)
    s0: np.ndarray
    direction: np.ndarray  # +1 / -1
    speed: np.ndarray
    crossing: np.ndarray  # bool: waits for its walk signal, then crosses
    signal: list[tuple[float, str]] = field(default_factory=list)  # (junction offset, walk phase) per crossing ped


@dataclass
class Statics:
    xy: np.ndarray  # (S, 2)
    heading: np.ndarray
    dims: np.ndarray  # (S, 3)
    names: list[str]


@dataclass
class Cast:
    ego_plan: list[PlanItem]
    route: list[str]
    vehicles: Vehicles
    pedestrians: Pedestrians
    statics: Statics
    # ego lane changes: (start, end) arc length on the ego path and the target lane's centerline
    ego_lane_changes: list[tuple[float, float, np.ndarray]] = field(default_factory=list)


def _near_samples(lines: list[np.ndarray], tree: cKDTree, radius: float, step: float) -> list[np.ndarray]:
    out = []
    for line in lines:
        pts = geo.resample(line, step)
        d, _ = tree.query(pts, distance_upper_bound=radius)
        out.append(pts[np.isfinite(d)])
    return out


def _vehicle_dims(rng: np.random.Generator) -> tuple[float, float, float]:
    if rng.random() < 0.06:  # box trucks (long buses off-track into the next lane in tight turns)
        return float(rng.uniform(6.5, 8.0)), 2.3, float(rng.uniform(2.6, 3.2))
    return float(rng.uniform(4.2, 5.2)), float(rng.uniform(1.8, 2.05)), float(rng.uniform(1.45, 1.9))


def cast_log(smap: SyntheticMap, topo: Topology, params: GenerateParams, duration_s: float,
             rng: np.random.Generator) -> Cast:
    net = smap.network
    by_len = sorted(net.roadblocks, key=lambda k: -topo.lane_len[net.roadblocks[k].lane_ids[0]])
    long_rbs = [k for k in by_len if topo.lane_len[net.roadblocks[k].lane_ids[0]] > 60] or by_len[: len(by_len) // 2 + 1]
    start_rb = long_rbs[int(rng.integers(len(long_rbs)))]
    plan, route = route_plan(topo, start_rb, float(rng.uniform(0.05, 0.4)), 17.0 * duration_s + 80, rng,
                             params.lane_change_prob)
    ego_path = build_path(net, plan, smap.stop_setback_m, topo.merge_lanes)
    rows: list[dict] = [dict(path=ego_path, dims=EGO_DIMS, factor=float(rng.uniform(0.9, 1.05)), s0=EGO_REAR_TO_CENTER,
                             v0=float(rng.uniform(3, 9)))]
    taken = [ego_path.xy[0]]

    def free(p: np.ndarray, radius: float) -> bool:
        return bool(np.min(np.linalg.norm(np.asarray(taken) - p, axis=1)) > radius)

    if rng.random() < params.slow_leader_prob:
        s = float(rng.uniform(25, 40))
        rows.append(dict(path=ego_path, dims=_vehicle_dims(rng), factor=1.0, s0=s, v0=3.0,
                         slow=float(rng.uniform(2.5, 5.5)), slow_until=s + float(rng.uniform(50, 120))))
        taken.append(ego_path.point(s))
    # cut-ins: a faster car in the next lane that merges in front of the ego somewhere along its route
    e = 0
    lane_changes = []
    for k, item in enumerate(plan):
        if item.change_to:
            idx = np.flatnonzero(ego_path.elem == e)
            if len(idx):
                a = idx[0] * STEP_M + item.change_at
                lane_changes.append((a, a + item.change_len, geo.resample(net.lanes[item.change_to].centerline, 1.0)))
        if item.element_id in net.lanes and item.change_to is None and k > 0:
            lane = net.lanes[item.element_id]
            n_lanes = len(net.roadblocks[lane.roadblock_id].lane_ids)
            idx = np.flatnonzero(ego_path.elem == e)
            reachable = len(idx) and idx[0] * STEP_M < 6.0 * duration_s  # the ego averages ~5 m/s
            if n_lanes >= 2 and reachable and (idx[-1] - idx[0]) * STEP_M > 95 and rng.random() < params.cut_in_prob:
                side = 1.0 if lane.lane_index > 0 else -1.0
                rows.append(dict(path=ego_path, dims=_vehicle_dims(rng), factor=float(rng.uniform(1.2, 1.35)),
                                 s0=0.0, v0=0.0, offset=side * lane.width, kind=CUT_IN,
                                 window=(idx[0] * STEP_M, idx[-1] * STEP_M)))
        e += 2 if item.change_to else 1
    # background traffic on lanes near the route
    tree = cKDTree(ego_path.xy[::4])
    lane_ids = list(net.lanes)
    near = _near_samples([net.lanes[k].centerline for k in lane_ids], tree, 50.0, 1.0)
    for lane_id, pts in zip(lane_ids, near):
        count = rng.poisson(params.vehicle_density_per_100m * len(pts) / 100.0)
        lane_s = geo.arc_length(net.lanes[lane_id].centerline)
        for _ in range(count):
            j = int(rng.integers(len(pts))) if len(pts) else -1
            if j < 0 or not free(pts[j], 14.0):
                continue
            s = float(lane_s[np.argmin(np.linalg.norm(net.lanes[lane_id].centerline - pts[j], axis=1))])
            if s > lane_s[-1] - 5:
                continue
            factor = float(rng.uniform(0.8, 1.1))
            length = factor * 16.0 * duration_s + 60
            path = build_path(net, random_plan(topo, lane_id, s, length, rng), smap.stop_setback_m, topo.merge_lanes)
            if path.stops and path.stops[0][0] < 12.0:  # not on (or past) a stop line
                continue
            v0 = float(rng.uniform(0.3, 0.8)) * net.lanes[lane_id].speed_limit_mps
            if path.stops:  # able to stop comfortably at the first light, whatever it shows
                v0 = min(v0, float(np.sqrt(6.0 * max(path.stops[0][0] - 5.0, 0.0))))
            rows.append(dict(path=path, dims=_vehicle_dims(rng), factor=factor, s0=0.0, v0=v0))
            taken.append(pts[j])
    n = len(rows)
    vehicles = Vehicles(
        paths=[r["path"] for r in rows],
        dims=np.array([r["dims"] for r in rows], float),
        speed_factor=np.array([r["factor"] for r in rows]),
        slow_speed=np.array([r.get("slow", 0.0) for r in rows]),
        slow_until=np.array([r.get("slow_until", -1.0) for r in rows]),
        s0=np.array([r["s0"] for r in rows]),
        v0=np.array([r["v0"] for r in rows]),
        offset0=np.array([r.get("offset", 0.0) for r in rows]),
        kind=np.array([r.get("kind", NORMAL) for r in rows], int),
        window=np.array([r.get("window", (0.0, 0.0)) for r in rows], float).reshape(n, 2),
    )
    return Cast(plan, route, vehicles, _pedestrians(smap, tree, params, rng), _statics(smap, tree, params, rng),
                lane_changes)


def _pedestrians(smap: SyntheticMap, tree: cKDTree, params: GenerateParams, rng: np.random.Generator) -> Pedestrians:
    lines, s0, direction, speed, crossing, signal = [], [], [], [], [], []
    for cw in smap.crosswalk_paths:
        d, _ = tree.query((cw.start + cw.end) / 2)
        if d > 60:
            continue
        for _ in range(rng.poisson(params.pedestrians_per_crosswalk)):
            line = geo.resample(np.stack([cw.start, cw.end]), STEP_M)
            forward = rng.random() < 0.5
            lines.append(line)
            s0.append(0.0 if forward else geo.arc_length(line)[-1])
            direction.append(1.0 if forward else -1.0)
            speed.append(float(rng.uniform(1.1, 1.6)))
            crossing.append(True)
            signal.append((smap.signals[cw.intersection_id].offset_s, cw.walk_phase))
    for walk, pts in zip(smap.sidewalks, _near_samples(smap.sidewalks, tree, 60.0, STEP_M)):
        for _ in range(rng.poisson(params.sidewalk_pedestrians_per_100m * len(pts) * STEP_M / 100.0)):
            line = geo.resample(walk, STEP_M)
            s = float(rng.uniform(0, geo.arc_length(line)[-1]))
            if tree.query(line[int(s / STEP_M)])[0] > 60:
                continue
            lines.append(line)
            s0.append(s)
            direction.append(1.0 if rng.random() < 0.5 else -1.0)
            speed.append(float(rng.uniform(0.9, 1.5)))
            crossing.append(False)
            signal.append((0.0, ""))
    return Pedestrians(lines, np.array(s0), np.array(direction), np.array(speed), np.array(crossing, bool), signal)


def _statics(smap: SyntheticMap, tree: cKDTree, params: GenerateParams, rng: np.random.Generator) -> Statics:
    xy, heading, dims, names = [], [], [], []
    kinds = list(STATIC_DIMS)
    for shoulder in smap.shoulders:
        pts = geo.resample(shoulder, 1.0)
        hs = geo.headings(pts)
        d, _ = tree.query(pts)
        near = np.flatnonzero(d < 60)
        for _ in range(rng.poisson(params.static_objects_per_100m * len(near) / 100.0)):
            j = int(near[int(rng.integers(len(near)))])
            name = kinds[int(rng.integers(len(kinds)))]
            normal = np.array([np.sin(hs[j]), -np.cos(hs[j])])  # outwards: right of the shoulder's direction
            xy.append(pts[j] + normal * rng.uniform(0.0, 0.4))
            heading.append(float(hs[j]))
            dims.append(STATIC_DIMS[name])
            names.append(name)
    for park in smap.network.carparks.values():
        if tree.query(park[:4].mean(axis=0))[0] > 100:
            continue
        c = park[:4].mean(axis=0)
        u = (park[0] - park[1]) / np.linalg.norm(park[0] - park[1])  # long side
        v = (park[1] - park[2]) / np.linalg.norm(park[1] - park[2])
        for i in range(-6, 7):
            for j in (-1, 1):
                if rng.random() < 0.55:
                    xy.append(c + u * i * 2.7 + v * j * 6.0)
                    heading.append(float(np.arctan2(v[1], v[0])))
                    dims.append(_vehicle_dims(rng))
                    names.append("vehicle")
    return Statics(np.array(xy, float).reshape(-1, 2), np.array(heading), np.array(dims, float).reshape(-1, 3), names)
