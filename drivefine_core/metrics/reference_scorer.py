"""Plain reference scorer: one trajectory, one state at a time, shapely polygons, scipy filters.

Written to be read next to docs/navsim-format-and-metrics.md sections 3-4, not to be fast. tests/metrics cross-check the fast
scorer (scorer.py) against it on random and adversarial candidates."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.signal import savgol_filter
from shapely.geometry import LineString, Point, Polygon

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import INTERSECTION_LAYER, MetricCache
from drivefine_core.metrics.reference_simulator import interpolate_plan, simulate_one


def _corners(x: float, y: float, h: float, half_l: float, half_w: float) -> list[tuple[float, float]]:
    """front-left, rear-left, rear-right, front-right."""
    c, s = np.cos(h), np.sin(h)
    pts = []
    for sl, sw in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
        pts.append((x + c * sl * half_l - s * sw * half_w, y + s * sl * half_l + c * sw * half_w))
    return pts


def _ego_center(state) -> tuple[float, float]:
    return (state[0] + K.REAR_AXLE_TO_CENTER * np.cos(state[2]), state[1] + K.REAR_AXLE_TO_CENTER * np.sin(state[2]))


def _ego_corners(state) -> list[tuple[float, float]]:
    cx, cy = _ego_center(state)
    return _corners(cx, cy, state[2], K.EGO_HALF_LENGTH, K.EGO_HALF_WIDTH)


def _angle_to(state, point) -> float:
    d = np.array(point) - np.array(state[:2])
    norm = np.linalg.norm(d)
    if norm == 0:
        return float("nan")
    return float(np.arccos(np.clip((d[0] * np.cos(state[2]) + d[1] * np.sin(state[2])) / norm, -1, 1)))


class _Scene:
    def __init__(self, cache: MetricCache):
        self.cache = cache
        self.drivable = [Polygon(cache.drivable_polygon(p)) for p in range(len(cache.drivable_ids))]
        self.intersections = [Polygon(cache.drivable_polygon(p)) for p in range(len(cache.drivable_ids))
                              if cache.drivable_layers[p] == INTERSECTION_LAYER]
        self.lanes = [Polygon(cache.lane_polygon(p)) for p in range(len(cache.lane_ids))]
        self.centerline = LineString(cache.centerline)
        self.drivable_arr = np.array(self.drivable + [Polygon()], dtype=object)[:-1]
        self.lanes_arr = np.array(self.lanes + [Polygon()], dtype=object)[:-1]
        self.inter_arr = np.array(self.intersections + [Polygon()], dtype=object)[:-1]
        self.is_agent = [n in K.AGENT_CLASSES for n in cache.agent_names]
        self.stopped = []
        for n in range(cache.num_agents):
            first = int(np.argmax(cache.agent_valid[n]))
            speed = float(np.linalg.norm(cache.agent_velocity[n, first]))
            self.stopped.append((not self.is_agent[n]) or not (speed > K.NC_STOPPED_SPEED))
        self.size = [np.nanmax(cache.agent_boxes[n, :, 3:5], axis=0) / 2 for n in range(cache.num_agents)]
        self._agent_polygons: dict[tuple[int, int], Polygon] = {}
        self._ego_polygons: dict[tuple, Polygon] = {}  # keyed by exact pose; bounded by the states scored
        self.memo: dict = {}  # reference / human results, shared by every plan scored on this scene
        self.last_areas: tuple = (None, None)

    def ego_polygon(self, state) -> Polygon:
        key = tuple(state[:3])
        if key not in self._ego_polygons:
            self._ego_polygons[key] = Polygon(_ego_corners(state))
        return self._ego_polygons[key]

    def far_apart(self, ego_center, n: int, t: int) -> bool:
        """Bounding circles do not touch: no polygon test needed (keeps this plain scorer bearable)."""
        gap = np.hypot(ego_center[0] - self.cache.agent_boxes[n, t, 0], ego_center[1] - self.cache.agent_boxes[n, t, 1])
        return gap > np.hypot(K.EGO_HALF_LENGTH, K.EGO_HALF_WIDTH) + np.hypot(*self.size[n]) + 1e-6

    def agent_polygon(self, n: int, t: int) -> Polygon:
        key = (n, t)
        if key not in self._agent_polygons:
            x, y, h = self.cache.agent_boxes[n, t, :3]
            self._agent_polygons[key] = Polygon(_corners(x, y, h, self.size[n][0], self.size[n][1]))
        return self._agent_polygons[key]

    def areas(self, state) -> dict[str, bool]:
        """The ego-area flags of one state (each polygon layer tested with one vectorised shapely call)."""
        corners = np.array(_ego_corners(state))
        center = _ego_center(state)
        xs, ys = corners[:, 0], corners[:, 1]
        in_drivable = shapely.contains_xy(self.drivable_arr[:, None], xs[None], ys[None]).any(axis=0)
        touched = shapely.contains_xy(self.lanes_arr[:, None], xs[None], ys[None]).sum(axis=1)
        multiple = int(np.sum(touched > 0)) > 1 and not np.any(touched == 4)
        on_route = self.lanes_arr[self.cache.lane_on_route]
        return {
            "non_drivable": not in_drivable.all(),
            "multiple_lanes": multiple,
            "oncoming": not shapely.contains_xy(on_route, *center).any(),
            "center_in_intersection": bool(shapely.contains_xy(self.inter_arr, *center).any()),
            "rear_in_intersection": bool(shapely.contains_xy(self.inter_arr, state[0], state[1]).any()),
        }


def _collisions(scene: _Scene, states, areas, removed) -> float:
    nc, judged = 1.0, set()
    for t, state in enumerate(states):
        ego = scene.ego_polygon(state)
        for n in range(scene.cache.num_agents):
            if n in judged or n in removed or not scene.cache.agent_valid[n, t] or scene.far_apart(_ego_center(state), n, t):
                continue
            obj = scene.agent_polygon(n, t)
            if not ego.intersects(obj):
                continue
            judged.add(n)
            corners = _ego_corners(state)
            if np.hypot(state[3], state[4]) <= K.NC_STOPPED_SPEED:
                at_fault = False
            elif scene.stopped[n]:
                at_fault = True
            elif _angle_to(state, scene.cache.agent_boxes[n, t, :2]) > K.BEHIND_ANGLE:
                at_fault = False
            elif LineString([corners[0], corners[3]]).intersects(obj):
                at_fault = True
            else:
                at_fault = areas[t]["multiple_lanes"] or areas[t]["non_drivable"]
            if at_fault:
                nc = min(nc, 0.0 if scene.is_agent[n] else 0.5)
    return nc


def _ttc(scene: _Scene, states, areas, removed, last_step) -> float:
    # TTC's own set of judged tracks starts empty: tracks NC saw touching the ego are tested again here.
    ignored = set(removed)
    for t in range(last_step + 1):
        state = states[t]
        speed = np.hypot(state[3], state[4])
        if speed < K.TTC_STOPPED_SPEED:
            continue
        for look in K.TTC_LOOKAHEAD_STEPS:
            shift = speed * look * K.DT
            cx, cy = _ego_center(state)
            moved_center = (cx + shift * np.cos(state[2]), cy + shift * np.sin(state[2]))
            candidates = [n for n in range(scene.cache.num_agents) if n not in ignored and scene.cache.agent_valid[n, t + look]
                          and not scene.far_apart(moved_center, n, t + look)]
            if not candidates:
                continue
            ego = Polygon([(x + shift * np.cos(state[2]), y + shift * np.sin(state[2])) for x, y in _ego_corners(state)])
            for n in candidates:
                if n in ignored or not ego.intersects(scene.agent_polygon(n, t + look)):
                    continue
                angle = _angle_to(state, scene.cache.agent_boxes[n, t + look, :2])
                a = areas[t]
                risky = a["multiple_lanes"] or a["non_drivable"] or a["rear_in_intersection"]
                if angle < K.AHEAD_ANGLE or (risky and not angle > K.BEHIND_ANGLE):
                    return 0.0
                ignored.add(n)
    return 1.0


def _sg(y, window, poly, deriv=0):
    return np.round(savgol_filter(y, min(window, len(y)), poly, deriv=deriv, delta=K.DT, mode="interp"), K.COMFORT_DECIMALS)


def _comfort_signals(ax, ay, heading, acc_window, jerk_window):
    yaw = np.unwrap(heading)
    mag = _sg(np.hypot(ax, ay), 8, 2)
    return {"lon_accel": _sg(ax, acc_window, 2), "lat_accel": _sg(ay, acc_window, 2), "accel_mag": mag,
            "jerk": _sg(mag, jerk_window, 2, 1), "lon_jerk": _sg(_sg(ax, 8, 2), jerk_window, 2, 1),
            "yaw_rate": _sg(yaw, 5, 2, 1), "yaw_accel": _sg(yaw, 5, 3, 2)}


def _comfortable(sig) -> bool:
    return bool(np.all(sig["lon_accel"] > K.MIN_LON_ACCEL) and np.all(sig["lon_accel"] < K.MAX_LON_ACCEL)
                and np.all(np.abs(sig["lat_accel"]) < K.MAX_ABS_LAT_ACCEL) and np.all(np.abs(sig["jerk"]) < K.MAX_ABS_JERK)
                and np.all(np.abs(sig["lon_jerk"]) < K.MAX_ABS_LON_JERK)
                and np.all(np.abs(sig["yaw_rate"]) < K.MAX_ABS_YAW_RATE)
                and np.all(np.abs(sig["yaw_accel"]) < K.MAX_ABS_YAW_ACCEL))


def _center_signals(states, acc_window, jerk_window, past=None):
    ax = states[:, 5] - states[:, 9] ** 2 * K.REAR_AXLE_TO_CENTER
    ay = states[:, 6] + states[:, 10] * K.REAR_AXLE_TO_CENTER
    heading = states[:, 2]
    if past is not None:
        rate = np.gradient(np.unwrap(past[:, 2]), K.DT)
        acc = np.gradient(rate, K.DT)
        ax = np.concatenate([past[:, 5] - rate**2 * K.REAR_AXLE_TO_CENTER, ax])
        ay = np.concatenate([past[:, 6] + acc * K.REAR_AXLE_TO_CENTER, ay])
        heading = np.concatenate([past[:, 2], heading])
    return _comfort_signals(ax, ay, heading, acc_window, jerk_window)


def _raw(scene: _Scene, states, version: str) -> dict[str, float]:
    cache = scene.cache
    key = states.tobytes()
    if scene.last_areas[0] != key:  # v1 and v2 of the same plan share the ego areas
        scene._ego_polygons.clear()
        scene.last_areas = (key, [scene.areas(s) for s in states])
    areas = scene.last_areas[1]
    centers = [_ego_center(s) for s in states]
    out = {"dac": 0.0 if any(a["non_drivable"] for a in areas) else 1.0}
    # Oncoming progress per step; only v2 leaves out steps whose centre is in an intersection.
    exempt = version == "v2"
    steps = [0.0] + [float(np.hypot(centers[t][0] - centers[t - 1][0], centers[t][1] - centers[t - 1][1]))
                     if areas[t]["oncoming"] and not (exempt and areas[t]["center_in_intersection"]) else 0.0
                     for t in range(1, len(states))]
    worst = max(sum(steps[i : i + K.DDC_WINDOW]) for i in range(len(steps) - K.DDC_WINDOW + 1))
    out["ddc"] = 1.0 if worst < K.DDC_OK else (0.5 if worst < K.DDC_VIOLATION else 0.0)
    out["progress"] = max(0.0, scene.centerline.project(Point(centers[-1])) - scene.centerline.project(Point(centers[0])))
    removed = set()
    if version == "v2":
        ego0 = Polygon(_ego_corners(np.zeros(11)))
        removed = {n for n in range(cache.num_agents) if cache.agent_valid[n, 0] and ego0.intersects(scene.agent_polygon(n, 0))}
    out["nc"] = _collisions(scene, states, areas, removed)
    last = K.NUM_SIM_STEPS if version == "v1" else K.V2_TTC_LAST_STEP
    out["ttc"] = _ttc(scene, states, areas, removed, last)
    if version == "v1":
        out["c"] = 1.0 if _comfortable(_comfort_signals(states[:, 5], states[:, 6], states[:, 2], 41, 41)) else 0.0
        return out
    tlc = 1.0
    for t, s in enumerate(states):
        ego = scene.ego_polygon(s)
        for li, lane in enumerate(cache.light_lane_index):
            if cache.light_red[li, t] and ego.intersects(Polygon(cache.lane_polygon(int(lane)))):
                tlc = 0.0
    out["tlc"] = tlc
    run, lk = 0, 1.0
    for t, c in enumerate(centers):
        if areas[t]["center_in_intersection"]:
            continue
        run = run + 1 if scene.centerline.distance(Point(c)) > K.LK_MAX_DISTANCE else 0
        if run >= K.LK_MAX_STEPS:
            lk = 0.0
    out["lk"] = lk
    out["hc"] = 1.0 if _comfortable(_center_signals(states, 8, 15, cache.past_states)) else 0.0
    return out


def _ec(states, prev_states) -> float:
    a, b = _center_signals(states, 8, 15), _center_signals(prev_states, 8, 15)
    for name, limit in zip(("accel_mag", "jerk", "yaw_rate", "yaw_accel"), K.EC_THRESHOLDS):
        if np.sqrt(np.mean((a[name][: -K.EC_SHIFT] - b[name][K.EC_SHIFT :]) ** 2)) > limit:
            return 0.0
    return 1.0


def _simulate(cache: MetricCache, poses41) -> np.ndarray:
    return simulate_one(poses41, cache.ego_velocity, cache.ego_acceleration, cache.ego_steering, cache.ego_yaw_rate)


def simulate_plan(cache: MetricCache, plan: np.ndarray) -> np.ndarray:
    """(8, 3) ego-frame plan -> (41, 11) simulated states, plain simulator."""
    return _simulate(cache, interpolate_plan(plan))


def _plain_scene(cache: MetricCache) -> _Scene:
    return cache.runtime("plain", lambda: _Scene(cache))


def _memo(scene: _Scene, key: tuple, make):
    if key not in scene.memo:
        scene.memo[key] = make()
    return scene.memo[key]


def reference_score(cache: MetricCache, plan: np.ndarray, version: str, previous: tuple[MetricCache, np.ndarray] | None = None,
                    human_filter: bool = True, states: np.ndarray | None = None) -> dict[str, float]:
    """Score one (8, 3) plan; keys '<version>/<metric>'. `previous` = (cache, plan) 0.5 s earlier, for EC.
    `states` may pass the plan's already simulated (41, 11) states (from simulate_plan) to share them."""
    scene = _plain_scene(cache)
    if states is None:
        states = simulate_plan(cache, plan)
    agent = _raw(scene, states, version)
    ref = _memo(scene, ("ref", version), lambda: _raw(scene, _simulate(cache, cache.reference[: K.NUM_STATES]), version))
    if version == "v1":
        mult = agent["nc"] * agent["dac"]
        masked, ref_masked = agent["progress"] * mult, ref["progress"] * ref["nc"] * ref["dac"]
        best = max(masked, ref_masked)
        ep = masked / best if best > K.PROGRESS_DISTANCE_THRESHOLD else 1.0
        ep = 0.0 if mult == 0 else ep
        res = {k: agent[k] for k in ("nc", "dac", "ddc", "ttc", "c")}
        res["ep"] = ep
        res["pdms"] = res["nc"] * res["dac"] * (5 * res["ttc"] + 5 * ep + 2 * res["c"]) / 12
        return {f"v1/{k}": float(v) for k, v in res.items()}

    def ep_v2(raw: float) -> float:
        best = max(raw, ref["progress"])
        return float(np.clip(raw / best, 0, 1)) if best > K.PROGRESS_DISTANCE_THRESHOLD else 1.0

    res = {k: agent[k] for k in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc")}
    res["ep"] = ep_v2(agent["progress"])
    if human_filter and not cache.is_synthetic and np.all(np.isfinite(cache.human_future)):
        human = dict(_memo(scene, ("human", "v2"), lambda: _raw(scene, simulate_plan(cache, cache.human_future), "v2")))
        human["ep"] = ep_v2(human["progress"])
        for k in ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc"):
            if human[k] == 0.0:
                res[k] = 1.0
    res["ec"] = float("nan")
    weights = 14.0
    if previous is not None:
        prev_cache, prev_plan = previous
        res["ec"] = _ec(states, simulate_plan(prev_cache, prev_plan))
        weights = 16.0
    ec_term = 0.0 if previous is None else 2 * res["ec"]
    res["epdms"] = (res["nc"] * res["dac"] * res["ddc"] * res["tlc"]
                    * (5 * res["ep"] + 5 * res["ttc"] + 2 * res["lk"] + 2 * res["hc"] + ec_term) / weights)
    return {f"v2/{k}": float(v) for k, v in res.items()}
