"""Reactive traffic for navhard scoring: NAVSIM v2's IDM agents (docs/navsim-rules.md, "Reactive agents").

Every vehicle detected in the current frame is put on the lane (or, inside an intersection, the lane
connector) under its centre, snapped onto that element's centreline, and driven along that one centreline
by the Intelligent Driver Model for 40 steps of 0.1 s. Each step it follows the nearest obstacle whose
shape touches its path ahead (the simulated ego, or another IDM vehicle's projected footprint); with none,
the end of its path acts as a stopped leader. Vehicles that cannot be put on a lane are held where they
are or dropped, by NAVSIM's rules; pedestrians, bicycles and static objects are replayed from the log.
The result is a copy of the MetricCache with the agent rows replaced, which the scorer reads unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from drivefine_core.data.schema import ego_to_global, global_to_ego, wrap_angle
from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.params import ReactiveAgentsParams
from drivefine_core.metrics.simulator import VX, VY, H, X, Y

STATIONARY_SPEED = 0.1  # m/s: below it an unplaced vehicle may be held as parked


@dataclass
class Placement:
    """What the map says about one vehicle at t = 0 (ego frame of the scene)."""

    path: np.ndarray | None  # (K, 2) centreline of its starting lane / connector, driving direction
    speed_limit: float | None = None  # m/s of that element; None: the params' target velocity
    in_lane: bool = False  # centre inside a lane or an intersection (parked-car rule)


class PlacementSource(Protocol):
    def __call__(self, cache: MetricCache, rows: np.ndarray) -> dict[int, Placement]: ...


def _cumulative(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _pose_at(points: np.ndarray, cum: np.ndarray, s: float) -> np.ndarray:
    s = min(max(s, 0.0), cum[-1])
    k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(points) - 2))
    seg = points[k + 1] - points[k]
    w = (s - cum[k]) / max(cum[k + 1] - cum[k], 1e-9)
    xy = points[k] + w * seg
    return np.array([xy[0], xy[1], math.atan2(seg[1], seg[0])])


def _trim(points: np.ndarray, cum: np.ndarray, s0: float, s1: float) -> np.ndarray:
    """The polyline between arc lengths s0 <= s1 (two points at least)."""
    inner = points[(cum > s0) & (cum < s1)]
    return np.vstack([_pose_at(points, cum, s0)[:2], inner, _pose_at(points, cum, s1)[:2]])


def _box(x: float, y: float, heading: float, length: float, width: float) -> Polygon:
    c, s = math.cos(heading), math.sin(heading)
    hl, hw = length / 2.0, width / 2.0
    corners = [(hl, hw), (hl, -hw), (-hl, -hw), (-hl, hw)]
    return Polygon([(x + c * a - s * b, y + s * a + c * b) for a, b in corners])


def ego_box(state: np.ndarray) -> Polygon:
    """The ego footprint of a simulator state (rear axle pose -> box centre 1.461 m ahead)."""
    h = float(state[H])
    cx = float(state[X]) + K.REAR_AXLE_TO_CENTER * math.cos(h)
    cy = float(state[Y]) + K.REAR_AXLE_TO_CENTER * math.sin(h)
    return _box(cx, cy, h, K.EGO_FRONT + K.EGO_REAR, K.EGO_WIDTH)


def idm_acceleration(v: float, gap: float, v_lead: float, length_rear: float, target: float,
                     p: ReactiveAgentsParams) -> float:
    """nuPlan's IDM: a (1 - (v / v0)^4 - (s* / s)^2), s* = s0 + v T + v (v - v_lead) / (2 sqrt(a b)),
    s = max(gap - length_rear, s0); clipped to [-b, a]."""
    s_star = p.min_gap + v * p.headway + v * (v - v_lead) / (2.0 * math.sqrt(p.accel_max * p.decel_max))
    s = max(gap - length_rear, p.min_gap)
    acc = p.accel_max * (1.0 - (v / target) ** 4 - (s_star / s) ** 2)
    return min(max(acc, -p.decel_max), p.accel_max)


class _IDMVehicle:
    def __init__(self, row: int, path: np.ndarray, progress: float, speed: float, length: float, width: float,
                 target: float) -> None:
        self.row, self.path, self.cum = row, path, _cumulative(path)
        self.progress, self.speed, self.length, self.width, self.target = progress, speed, length, width, target

    def bounded(self, s: float) -> float:
        return min(max(s, 0.0), float(self.cum[-1]))

    def pose(self) -> np.ndarray:
        return _pose_at(self.path, self.cum, self.bounded(self.progress))

    def polygon(self) -> Polygon:
        x, y, h = self.pose()
        return _box(x, y, h, self.length, self.width)

    def corridor(self) -> Polygon:
        """Its path ahead (from its bounded progress to the end) widened to its width, flat ends."""
        s = self.bounded(self.progress)
        end = float(self.cum[-1])
        if end - s < 1e-6:
            return self.polygon()
        return LineString(_trim(self.path, self.cum, s, end)).buffer(self.width / 2.0, cap_style="flat")

    def projected_footprint(self, headway: float):
        """Its box united with its path from its rear to `speed * headway` ahead of its front."""
        s0 = self.bounded(self.progress - self.length / 2.0)
        s1 = self.bounded(self.progress + self.length / 2.0 + self.speed * headway)
        if s1 - s0 < 1e-6:
            return self.polygon()
        ahead = LineString(_trim(self.path, self.cum, s0, s1)).buffer(self.width / 2.0, cap_style="flat")
        return shapely.union(ahead, self.polygon())


@dataclass
class ReactiveResult:
    boxes: np.ndarray  # (N, 51, 5) like MetricCache.agent_boxes
    velocity: np.ndarray  # (N, 51, 2)
    valid: np.ndarray  # (N, 51)
    simulated: np.ndarray  # (N,) bool: driven by IDM
    held: np.ndarray  # (N,) bool: vehicles held where they were (parked-car rule)


def simulate_reactive(cache: MetricCache, ego_states: np.ndarray, placements: dict[int, Placement],
                      params: ReactiveAgentsParams | None = None) -> ReactiveResult:
    """Agents of `cache` over 0..5 s with the vehicles reacting to `ego_states` (41, 11 simulator states).

    `placements` maps vehicle rows seen at t = 0 to their map placement (rows absent: no lane found)."""
    p = params or ReactiveAgentsParams()
    n = cache.num_agents
    boxes, vel, valid = cache.agent_boxes.copy(), cache.agent_velocity.copy(), cache.agent_valid.copy()
    is_vehicle = np.array([name == "vehicle" for name in cache.agent_names], dtype=bool)
    now = cache.agent_valid[:, 0] if n else np.zeros(0, dtype=bool)
    vehicles = np.flatnonzero(is_vehicle & now)
    # Vehicles not detected now are never part of the reactive world (they only exist in the log's future).
    valid[is_vehicle & ~now] = False
    occupied = [ego_box(ego_states[0])]
    agents: list[_IDMVehicle] = []
    deviation: dict[int, float] = {}
    for row in vehicles:
        x, y, h, length, width = (float(v) for v in cache.agent_boxes[row, 0])
        place = placements.get(int(row))
        if place is None or place.path is None or len(place.path) < 2:
            continue
        cum = _cumulative(place.path)
        progress = float(LineString(place.path).project(shapely.Point(x, y)))
        snapped = _pose_at(place.path, cum, progress)
        deviation[int(row)] = float(np.hypot(snapped[0] - x, snapped[1] - y))
        if deviation[int(row)] > p.snap_threshold_m:
            continue
        box = _box(snapped[0], snapped[1], snapped[2], length, width)
        if any(box.intersects(o) for o in occupied):  # would start inside the ego or a placed vehicle
            continue
        occupied.append(box)
        v = cache.agent_velocity[row, 0]
        speed = float(np.hypot(*v)) if np.all(np.isfinite(v)) else float(np.hypot(*cache.ego_velocity))
        target = place.speed_limit if place.speed_limit and place.speed_limit > 0 else p.target_velocity
        agents.append(_IDMVehicle(int(row), place.path, progress, speed, length, width, target))
    simulated = np.zeros(n, dtype=bool)
    simulated[[a.row for a in agents]] = True
    # Vehicles left out: held where they are when parked off the lanes, or when too far from their lane
    # to snap; otherwise they are gone (NAVSIM's open-loop parked vehicles).
    held = np.zeros(n, dtype=bool)
    for row in vehicles:
        if simulated[row]:
            continue
        place = placements.get(int(row))
        v = cache.agent_velocity[row, 0]
        speed = float(np.hypot(*v)) if np.all(np.isfinite(v)) else 0.0
        parked = speed < STATIONARY_SPEED and not (place is not None and place.in_lane)
        off_lane = deviation.get(int(row), 0.0) > p.snap_threshold_m
        held[row] = parked or off_lane
    for row in np.flatnonzero(is_vehicle & now & ~simulated):
        valid[row] = False
    held_boxes = {int(r): _box(*(float(v) for v in cache.agent_boxes[r, 0])) for r in np.flatnonzero(held)}

    def record(step: int, active: list[_IDMVehicle]) -> None:
        polys = []
        for a in active:
            x, y, h = a.pose()
            boxes[a.row, step] = [x, y, h, a.length, a.width]
            vel[a.row, step] = [a.speed * math.cos(h), a.speed * math.sin(h)]
            valid[a.row, step] = True
            polys.append(a.polygon())
        for r, poly in held_boxes.items():  # a held vehicle shows only while no active vehicle overlaps it
            if not any(poly.intersects(q) for q in polys):
                boxes[r, step] = cache.agent_boxes[r, 0]
                vel[r, step] = cache.agent_velocity[r, 0]
                valid[r, step] = True

    active = list(agents)
    record(0, active)
    footprint: dict[int, object] = {a.row: a.polygon() for a in active}
    for step in range(1, K.NUM_STATES):
        ego = ego_states[step - 1]  # as in NAVSIM, step t reacts to the ego state one step earlier
        ego_poly = ego_box(ego)
        ego_centre = np.array([ego[X] + K.REAR_AXLE_TO_CENTER * math.cos(ego[H]),
                               ego[Y] + K.REAR_AXLE_TO_CENTER * math.sin(ego[H])])
        keep = [a for a in active if np.hypot(*(a.pose()[:2] - ego_centre)) <= p.radius_m]
        for a in active:
            if a not in keep:
                footprint.pop(a.row, None)
        active = keep
        by_row = {a.row: a for a in active}
        for a in active:
            corridor = a.corridor()
            own = footprint[a.row]
            best: tuple[float, float, float] | None = None  # (distance, leader speed, leader heading)
            candidates = [(-1, ego_poly)] + [(r, f) for r, f in footprint.items() if r != a.row]
            for r, poly in candidates:
                if not corridor.intersects(poly):
                    continue
                d = float(own.distance(poly))
                if best is None or d < best[0]:
                    if r == -1:
                        best = (d, float(np.hypot(ego[VX], ego[VY])), float(ego[H]))
                    else:
                        other = by_row[r]
                        best = (d, other.speed, float(other.pose()[2]))
            if best is not None:
                rel = float(wrap_angle(best[2] - a.pose()[2]))
                acc = idm_acceleration(a.speed, best[0], best[1] * math.cos(rel), 0.0, a.target, p)
            else:  # free road: the end of the path is a stopped leader
                acc = idm_acceleration(a.speed, float(a.cum[-1]) - a.progress, 0.0, a.length / 2.0, a.target, p)
            a.progress += K.DT * a.speed  # explicit Euler: position with the old speed
            a.speed = max(a.speed + K.DT * acc, 0.0)
            footprint[a.row] = a.projected_footprint(p.headway)
        record(step, active)
    for step in range(K.NUM_STATES, K.NUM_OBS_STEPS):  # past the 4 s horizon: held at the last state
        boxes[simulated, step] = boxes[simulated, K.NUM_STATES - 1]
        vel[simulated, step] = vel[simulated, K.NUM_STATES - 1]
        valid[simulated, step] = valid[simulated, K.NUM_STATES - 1]
        for r in held_boxes:
            boxes[r, step], vel[r, step], valid[r, step] = boxes[r, K.NUM_STATES - 1], vel[r, K.NUM_STATES - 1], valid[r, K.NUM_STATES - 1]
    gone = ~valid
    boxes[gone], vel[gone] = np.nan, np.nan
    return ReactiveResult(boxes, vel, valid, simulated, held)


def reactive_cache(cache: MetricCache, result: ReactiveResult) -> MetricCache:
    """A copy of `cache` whose agents are the reactive ones (fresh runtime: nothing measured on the log's
    agents is reused); agents that are never there (dropped vehicles) are left out."""
    keep = result.valid.any(axis=1)
    seen = cache.agent_seen_at_start[keep] if len(cache.agent_seen_at_start) else cache.agent_seen_at_start
    return replace(cache, agent_boxes=result.boxes[keep], agent_velocity=result.velocity[keep],
                   agent_valid=result.valid[keep], agent_names=[n for n, k in zip(cache.agent_names, keep) if k],
                   agent_tokens=[t for t, k in zip(cache.agent_tokens, keep) if k], agent_seen_at_start=seen,
                   _runtime={})


class MapLike(Protocol):
    def lanes_at(self, points: np.ndarray) -> list[list[str]]: ...
    def points_in_intersection(self, points: np.ndarray) -> np.ndarray: ...
    def centerline(self, element_id: str) -> np.ndarray: ...
    def speed_limit(self, element_id: str) -> float | None: ...


def map_placements(map_api: MapLike, connector_ids: set[str]) -> PlacementSource:
    """Placements from a map: the lane under a vehicle's centre, else (inside an intersection) the lane
    connector under it; of several, the one whose centreline heading is closest to the vehicle's."""

    def place(cache: MetricCache, rows: np.ndarray) -> dict[int, Placement]:
        if len(rows) == 0:
            return {}
        world = ego_to_global(cache.agent_boxes[rows, 0, :3], cache.origin)
        under = map_api.lanes_at(world[:, :2])
        crossing = map_api.points_in_intersection(world[:, :2])
        out: dict[int, Placement] = {}
        for row, pose, ids, inter in zip(rows, world, under, crossing):
            lanes = [e for e in ids if e not in connector_ids]
            pool = lanes if lanes else ([e for e in ids if e in connector_ids] if inter else [])
            best, best_diff = None, math.inf
            for element in pool:
                line = np.asarray(map_api.centerline(element), dtype=np.float64)
                cum = _cumulative(line)
                s = float(LineString(line).project(shapely.Point(pose[0], pose[1])))
                diff = abs(float(wrap_angle(_pose_at(line, cum, s)[2] - pose[2])))
                if diff < best_diff:
                    best, best_diff = element, diff
            if best is None:
                out[int(row)] = Placement(None, None, bool(lanes) or bool(inter))
                continue
            path = global_to_ego(np.asarray(map_api.centerline(best), dtype=np.float64)[:, :2], cache.origin)
            out[int(row)] = Placement(path, map_api.speed_limit(best), True)
        return out

    return place
