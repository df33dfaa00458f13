"""Lane-level plans and the dense paths vehicles follow (0.5 m samples with element and route labels)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drivefine_core.data.road_network import RoadNetwork
from drivefine_core.data.synthetic import geometry as geo

STEP_M = 0.5  # path sample spacing
A_LAT_MAX = 2.0  # comfortable lateral acceleration in curves, m/s^2
B_COMFORT = 1.5  # deceleration used to anticipate curves, m/s^2


@dataclass
class PlanItem:
    element_id: str  # lane or lane connector
    change_to: str | None = None  # lane of the same roadblock this lane item ends in
    change_at: float = 0.0  # arc length where the lane change starts
    change_len: float = 0.0
    start_s: float = 0.0  # only for the first item: where on the element the path starts


@dataclass
class Path:
    xy: np.ndarray  # (L, 2)
    heading: np.ndarray  # (L,)
    elem: np.ndarray  # (L,) index into elements
    elements: list[str]
    roadblocks: list[str]  # per element: its roadblock / roadblock connector
    speed_limit: np.ndarray  # (L,)
    v_allow: np.ndarray  # (L,) speed cap from upcoming curvature
    stops: list[tuple[float, str]] = field(default_factory=list)  # (arc length of the stop line, connector id)
    merges: list[tuple[float, str]] = field(default_factory=list)  # (arc length where it joins a lane, lane id)

    @property
    def length(self) -> float:
        return (len(self.xy) - 1) * STEP_M

    def roadblock_at(self, s: float) -> str:
        i = int(np.clip(round(s / STEP_M), 0, len(self.xy) - 1))
        return self.roadblocks[int(self.elem[i])]

    def point(self, s: float) -> np.ndarray:
        i = np.clip(s / STEP_M, 0, len(self.xy) - 1)
        i0 = int(min(np.floor(i), len(self.xy) - 2))
        f = i - i0
        return self.xy[i0] * (1 - f) + self.xy[i0 + 1] * f


class Topology:
    """Successor tables of a RoadNetwork (the dataclass' own lookups scan every connector)."""

    def __init__(self, net: RoadNetwork) -> None:
        self.net = net
        self.out_conns: dict[str, list[str]] = {k: [] for k in net.lanes}
        for lc in net.lane_connectors.values():
            self.out_conns[lc.from_lane_id].append(lc.id)
        self.out_rbcs: dict[str, list[str]] = {k: [] for k in net.roadblocks}
        for rbc in net.roadblock_connectors.values():
            self.out_rbcs[rbc.from_roadblock_id].append(rbc.id)
        incoming: dict[str, int] = {}
        for lc in net.lane_connectors.values():
            incoming[lc.to_lane_id] = incoming.get(lc.to_lane_id, 0) + 1
        self.merge_lanes = {k for k, n in incoming.items() if n > 1}  # lanes several connectors feed
        self.lane_len = {k: float(geo.arc_length(v.centerline)[-1]) for k, v in net.lanes.items()}
        self.conn_len = {k: float(geo.arc_length(v.centerline)[-1]) for k, v in net.lane_connectors.items()}

    def length(self, element_id: str) -> float:
        return self.lane_len.get(element_id) or self.conn_len[element_id]


def random_plan(topo: Topology, lane_id: str, start_s: float, length: float, rng: np.random.Generator) -> list[PlanItem]:
    """Random walk through the lane graph from a point on a lane, at least `length` metres long."""
    plan = [PlanItem(lane_id, start_s=start_s)]
    total = topo.length(lane_id) - start_s
    while total < length:
        conn = topo.out_conns[plan[-1].change_to or plan[-1].element_id]
        c = conn[int(rng.integers(len(conn)))]
        lane = topo.net.lane_connectors[c].to_lane_id
        plan += [PlanItem(c), PlanItem(lane)]
        total += topo.length(c) + topo.length(lane)
    return plan


def route_plan(
    topo: Topology, start_roadblock: str, start_frac: float, length: float, rng: np.random.Generator,
    lane_change_prob: float,
) -> tuple[list[PlanItem], list[str]]:
    """The ego's plan: a random roadblock route, lanes chosen to reach each next connector, lane changes where
    needed (and sometimes by choice). Returns the plan and the route (roadblock / connector ids in order)."""
    net = topo.net
    route = [start_roadblock]
    total = -start_frac * topo.lane_len[net.roadblocks[start_roadblock].lane_ids[0]]
    while total < length:
        rb = route[-1]
        total += topo.lane_len[net.roadblocks[rb].lane_ids[0]]
        rbcs = topo.out_rbcs[rb]
        rbc = rbcs[int(rng.integers(len(rbcs)))]
        route += [rbc, net.roadblock_connectors[rbc].to_roadblock_id]
        total += topo.conn_len[net.roadblock_connectors[rbc].lane_connector_ids[0]]
    plan: list[PlanItem] = []
    entry: str | None = None
    for k in range(0, len(route), 2):
        rb = net.roadblocks[route[k]]
        nxt = net.roadblock_connectors[route[k + 1]] if k + 1 < len(route) else None
        exits = sorted({net.lane_connectors[c].from_lane_id for c in nxt.lane_connector_ids}) if nxt else rb.lane_ids
        idx = {lane: net.lanes[lane].lane_index for lane in rb.lane_ids}
        if entry is None:  # first roadblock: start in a lane that needs no change
            exit_lane = exits[int(rng.integers(len(exits)))]
            plan.append(PlanItem(exit_lane, start_s=start_frac * topo.lane_len[exit_lane]))
        else:
            near = sorted(exits, key=lambda lane: abs(idx[lane] - idx[entry]))
            exit_lane = near[0]
            if len(near) > 1 and rng.random() < lane_change_prob:
                exit_lane = near[1 + int(rng.integers(len(near) - 1))]
            if exit_lane == entry:
                plan.append(PlanItem(entry))
            else:
                length_rb = topo.lane_len[entry]
                change_len = float(np.clip(0.4 * length_rb, 15.0, 45.0))
                at = float(rng.uniform(min(8.0, length_rb / 4), max(8.0, length_rb - change_len - 10.0)))
                change_len = min(change_len, max(length_rb - 1.0 - at, 1.0))  # done before the lane ends
                plan.append(PlanItem(entry, change_to=exit_lane, change_at=at, change_len=change_len))
        if nxt is None:
            break
        conns = [c for c in nxt.lane_connector_ids if net.lane_connectors[c].from_lane_id == exit_lane]
        c = conns[int(rng.integers(len(conns)))]
        plan.append(PlanItem(c))
        entry = net.lane_connectors[c].to_lane_id
    return plan, route


def _lane_change(a: np.ndarray, b: np.ndarray, at: float, length: float) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):  # parallel lanes of one roadblock share their sampling; guard anyway
        n = max(len(a), len(b))
        a, b = (geo.resample(x, geo.arc_length(x)[-1] / (n - 1)) for x in (a, b))
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
    s = geo.arc_length(a)
    u = np.clip((s - at) / max(length, 1e-3), 0.0, 1.0)
    alpha = (u * u * (3 - 2 * u))[:, None]
    return (1 - alpha) * a + alpha * b, alpha[:, 0] >= 0.5


def build_path(net: RoadNetwork, plan: list[PlanItem], setback_m: float, merge_lanes: set[str] | None = None) -> Path:
    pts, labels, elements, roadblocks = [], [], [], []
    limits = []
    for k, item in enumerate(plan):
        if item.element_id in net.lanes:
            lane = net.lanes[item.element_id]
            line = lane.centerline
            lab = np.full(len(line), len(elements))
            elements.append(lane.id)
            roadblocks.append(lane.roadblock_id)
            limits.append(lane.speed_limit_mps)
            if item.change_to:
                line, second = _lane_change(line, net.lanes[item.change_to].centerline, item.change_at, item.change_len)
                lab = np.where(second, len(elements), lab[: len(line)])
                elements.append(item.change_to)
                roadblocks.append(lane.roadblock_id)
                limits.append(net.lanes[item.change_to].speed_limit_mps)
        else:
            lc = net.lane_connectors[item.element_id]
            line = lc.centerline
            lab = np.full(len(line), len(elements))
            elements.append(lc.id)
            roadblocks.append(lc.roadblock_connector_id)
            limits.append(lc.speed_limit_mps)
        if k == 0 and item.start_s > 0:
            s = geo.arc_length(line)
            keep = s >= item.start_s
            first = np.array([np.interp(item.start_s, s, line[:, i]) for i in range(2)])
            line, lab = np.concatenate([first[None], line[keep]]), np.concatenate([lab[:1], lab[keep]])
        if pts:
            line, lab = line[1:], lab[1:]  # the joint point is shared
        pts.append(line)
        labels.append(lab)
    raw = np.concatenate(pts)
    raw_lab = np.concatenate(labels)
    s_raw = geo.arc_length(raw)
    keep = np.concatenate([[True], np.diff(s_raw) > 1e-6])
    raw, raw_lab, s_raw = raw[keep], raw_lab[keep], s_raw[keep]
    n = max(2, int(s_raw[-1] / STEP_M) + 1)
    s = np.arange(n) * STEP_M
    xy = np.stack([np.interp(s, s_raw, raw[:, 0]), np.interp(s, s_raw, raw[:, 1])], axis=1)
    elem = raw_lab[np.clip(np.searchsorted(s_raw, s, side="right") - 1, 0, len(raw_lab) - 1)]
    speed_limit = np.asarray(limits)[elem]
    kappa = np.abs(geo.curvature(xy))
    v_curve = np.sqrt(A_LAT_MAX / np.maximum(kappa, 1e-4))
    # anticipate curves: v(s) <= sqrt(v_curve(s')^2 + 2 b (s' - s)) over the next 40 m
    window = int(40 / STEP_M)
    padded = np.concatenate([v_curve, np.full(window, v_curve[-1])])
    idx = np.arange(n)[:, None] + np.arange(window)[None, :]
    v_allow = np.min(np.sqrt(padded[idx] ** 2 + 2 * B_COMFORT * STEP_M * np.arange(window)[None, :]), axis=1)
    stops, merges = [], []
    for e, element_id in enumerate(elements):
        lc = net.lane_connectors.get(element_id)
        if lc is None:
            continue
        where = np.flatnonzero(elem == e)
        if lc.has_traffic_light and len(where) and where[0] > 0:
            stops.append((float(s[where[0]] - setback_m), element_id))
        if merge_lanes and lc.to_lane_id in merge_lanes and len(where):
            merges.append((float(s[min(where[-1] + 1, n - 1)]), lc.to_lane_id))
    return Path(xy, geo.headings(xy), elem, elements, roadblocks, speed_limit, v_allow, stops, merges)
