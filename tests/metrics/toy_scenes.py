"""Hand-made MetricCaches (straight road, left curve, signalised intersection) with constant-velocity
agents: known answers for tests, benchmarks and examples, independent of the map reader and generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString, box

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import DRIVABLE_LAYERS, MetricCache, flatten_polygons

LANE_WIDTH = 3.6


@dataclass
class ToyAgent:
    x: float
    y: float
    heading: float = 0.0
    speed: float = 0.0
    name: str = "vehicle"
    length: float = 4.5
    width: float = 2.0
    first_step: int = 0
    last_step: int = K.NUM_OBS_STEPS - 1


def poses_along(line: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Poses at arc lengths along a polyline (heading of the segment)."""
    seg = np.diff(line, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))])
    x = np.interp(distances, cum, line[:, 0])
    y = np.interp(distances, cum, line[:, 1])
    k = np.clip(np.searchsorted(cum, distances, side="right") - 1, 0, len(seg) - 1)
    return np.stack([x, y, np.arctan2(seg[k, 1], seg[k, 0])], axis=-1)


def _ring(geom) -> np.ndarray:
    return np.asarray(geom.exterior.coords)[:-1]


def _agents(agents: list[ToyAgent]):
    n = len(agents)
    boxes = np.full((n, K.NUM_OBS_STEPS, 5), np.nan)
    vel = np.full((n, K.NUM_OBS_STEPS, 2), np.nan)
    valid = np.zeros((n, K.NUM_OBS_STEPS), dtype=bool)
    t = np.arange(K.NUM_OBS_STEPS) * K.DT
    for i, a in enumerate(agents):
        sl = slice(a.first_step, a.last_step + 1)
        c, s = np.cos(a.heading), np.sin(a.heading)
        boxes[i, sl] = np.stack([a.x + a.speed * c * t, a.y + a.speed * s * t, np.full_like(t, a.heading),
                                 np.full_like(t, a.length), np.full_like(t, a.width)], -1)[sl]
        vel[i, sl] = [a.speed * c, a.speed * s]
        valid[i, sl] = True
    return boxes, vel, valid, [a.name for a in agents], [f"track{i}" for i in range(n)]


def _assemble(token, log_name, timestamp_us, centerline, drivable, lanes, lights, agents, ego_speed,
              ego_accel, speed_limit) -> MetricCache:
    dv, do = flatten_polygons([p for _, _, p in drivable])
    lv, lo = flatten_polygons([p for _, _, p, _ in lanes])
    lane_ids = [i for i, _, _, _ in lanes]
    boxes, vel, valid, names, tokens = _agents(agents)
    light_idx = np.array([lane_ids.index(lid) for lid, _ in lights], dtype=np.int64)
    light_red = np.array([red for _, red in lights], dtype=bool).reshape(len(lights), K.NUM_OBS_STEPS)
    t_future = np.arange(1, K.PLAN_POSES + 1) * K.PLAN_DT
    t_past = -np.arange(K.NUM_PAST_STATES, 0, -1) * K.DT - 0.1
    past = np.zeros((K.NUM_PAST_STATES, 7))
    past[:, 0] = ego_speed * t_past
    past[:, 3] = ego_speed
    reference = poses_along(centerline, ego_speed * np.arange(K.NUM_OBS_STEPS) * K.DT)
    reference -= reference[0]  # centerline starts at the ego
    return MetricCache(
        token=token, log_name=log_name, timestamp_us=timestamp_us, map_location="toy",
        origin=np.zeros(3), ego_velocity=np.array([ego_speed, 0.0]), ego_acceleration=np.array([ego_accel, 0.0]),
        driving_command=np.array([0, 1, 0, 0]), human_future=poses_along(centerline, ego_speed * t_future),
        past_states=past, reference=reference, centerline=centerline,
        drivable_vertices=dv, drivable_offsets=do,
        drivable_layers=np.array([DRIVABLE_LAYERS.index(layer) for layer, _, _ in drivable], dtype=np.int8),
        drivable_ids=[i for _, i, _ in drivable], lane_vertices=lv, lane_offsets=lo,
        lane_is_connector=np.array([i.startswith("lc") for i in lane_ids], dtype=bool),
        lane_on_route=np.array([r for _, r, _, _ in lanes], dtype=bool),
        lane_ids=lane_ids, light_lane_index=light_idx, light_red=light_red,
        agent_boxes=boxes, agent_valid=valid, agent_velocity=vel, agent_names=names, agent_tokens=tokens,
        speed_limit=speed_limit,
    ).validate()


def straight_road(agents: list[ToyAgent] = (), ego_speed: float = 10.0, ego_accel: float = 0.0, token: str = "straight",
                  log_name: str = "toy_log", timestamp_us: int = 0, speed_limit: float = 15.0) -> MetricCache:
    """Two on-route lanes (y = 0 and y = 3.6) and one oncoming lane (y = -3.6), x in [-60, 160]."""
    w = LANE_WIDTH
    x0, x1 = -60.0, 160.0
    lanes = [("l0", _ring(box(x0, -w / 2, x1, w / 2)), True), ("l1", _ring(box(x0, w / 2, x1, 1.5 * w)), True),
             ("l2", _ring(box(x0, -1.5 * w, x1, -w / 2)), False)]
    drivable = [("roadblock", "rb0", _ring(box(x0, -w / 2, x1, 1.5 * w))), ("roadblock", "rb1", _ring(box(x0, -1.5 * w, x1, -w / 2)))]
    centerline = np.stack([np.arange(0.0, x1 + 1), np.zeros(int(x1) + 1)], -1)
    return _assemble(token, log_name, timestamp_us, centerline, drivable, [(i, r, p, None) for i, p, r in lanes], [],
                     list(agents), ego_speed, ego_accel, speed_limit)


def curved_road(agents: list[ToyAgent] = (), ego_speed: float = 10.0, radius: float = 40.0, token: str = "curve",
                log_name: str = "toy_curve", timestamp_us: int = 0) -> MetricCache:
    """20 m straight, then a left arc of `radius` over 120 degrees; lanes as in straight_road."""
    arc = np.linspace(0, np.deg2rad(120), 60)
    pts = np.concatenate([np.stack([np.linspace(-40, 20, 31), np.zeros(31)], -1)[:-1],
                          np.stack([20 + radius * np.sin(arc), radius - radius * np.cos(arc)], -1)])
    line = LineString(pts)
    w = LANE_WIDTH
    lanes = []
    for lid, off, on_route in (("l0", 0.0, True), ("l1", w, True), ("l2", -w, False)):
        center = line.offset_curve(off) if off else line
        lanes.append((lid, _ring(center.buffer(w / 2, cap_style="flat")), on_route))
    forward = line.offset_curve(w / 2).buffer(w, cap_style="flat")
    oncoming = line.offset_curve(-w).buffer(w / 2, cap_style="flat")
    drivable = [("roadblock", "rb0", _ring(forward)), ("roadblock", "rb1", _ring(oncoming))]
    start = np.argmin(np.abs(pts[:, 0]))
    return _assemble(token, log_name, timestamp_us, pts[start:], drivable, [(i, r, p, None) for i, p, r in lanes], [],
                     list(agents), ego_speed, 0.0, 12.0)


def intersection(agents: list[ToyAgent] = (), ego_speed: float = 10.0, red_from_step: int | None = 0,
                 token: str = "intersection", log_name: str = "toy_cross", timestamp_us: int = 0) -> MetricCache:
    """Ego road along x through a 20 m intersection at x in [40, 60]; a cross road along y at x = 50.
    The on-route straight connector has a light, red from `red_from_step` (None = always green)."""
    w = LANE_WIDTH
    lanes = [("l_in", _ring(box(-60, -w / 2, 40, w / 2)), True), ("l_out", _ring(box(60, -w / 2, 160, w / 2)), True),
             ("l_in_onc", _ring(box(-60, -1.5 * w, 40, -w / 2)), False), ("l_out_onc", _ring(box(60, -1.5 * w, 160, -w / 2)), False),
             ("lc_straight", _ring(box(40, -w / 2, 60, w / 2)), True), ("lc_straight_onc", _ring(box(40, -1.5 * w, 60, -w / 2)), False),
             ("l_cross_n", _ring(box(50, 10, 50 + w, 100)), False), ("l_cross_s", _ring(box(50 - w, -100, 50, -10)), False),
             ("lc_cross", _ring(box(50, -10, 50 + w, 10)), False)]
    drivable = [("roadblock", "rb_in", _ring(box(-60, -1.5 * w, 40, w / 2))), ("roadblock", "rb_out", _ring(box(60, -1.5 * w, 160, w / 2))),
                ("roadblock", "rb_cross_n", _ring(box(50 - w, 10, 50 + w, 100))), ("roadblock", "rb_cross_s", _ring(box(50 - w, -100, 50 + w, -10))),
                ("intersection", "int0", _ring(box(40, -10, 60, 10))), ("roadblock_connector", "rbc0", _ring(box(40, -1.5 * w, 60, w / 2)))]
    red = np.zeros(K.NUM_OBS_STEPS, dtype=bool)
    if red_from_step is not None:
        red[red_from_step:] = True
    centerline = np.stack([np.arange(0.0, 161), np.zeros(161)], -1)
    return _assemble(token, log_name, timestamp_us, centerline, drivable, [(i, r, p, None) for i, p, r in lanes],
                     [("lc_straight", red)], list(agents), ego_speed, 0.0, 15.0)
