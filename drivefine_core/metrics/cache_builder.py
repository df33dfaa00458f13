"""Build a MetricCache from a Scene and a map: map crop, route, lights, agents at 10 Hz, ego history,
human future and the PDM-Closed reference. Everything is moved into the current ego frame."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import shapely

from drivefine_core.data.schema import Scene, global_to_ego, wrap_angle
from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import DRIVABLE_LAYERS, MetricCache, flatten_polygons
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.metrics.pdm_closed import pdm_closed
from drivefine_core.metrics.scene_index import scene_index


class MapLike(Protocol):
    def drivable_polygons(self, xy: np.ndarray, radius: float) -> list: ...
    def lane_polygons(self, xy: np.ndarray, radius: float) -> list: ...
    def route_plan(self, roadblock_ids: list[str], start_pose: np.ndarray) -> Any: ...
    def route_lane_ids(self, roadblock_ids: list[str]) -> list[str]: ...
    def speed_limit(self, element_id: str) -> float | None: ...


def _rings(geom) -> list[np.ndarray]:
    """Exterior rings of a (Multi)Polygon; holes are dropped (map surfaces have none in practice)."""
    parts = getattr(geom, "geoms", [geom])
    return [np.asarray(p.exterior.coords)[:-1] for p in parts if isinstance(p, shapely.Polygon) and not p.is_empty]


def _frame_times(scene: Scene) -> np.ndarray:
    t0 = scene.current_frame.timestamp_us
    return np.array([(f.timestamp_us - t0) / 1e6 for f in scene.frames])


def _agents(scene: Scene, origin: np.ndarray) -> tuple:
    """Ground-truth boxes of the current and future frames, interpolated to 10 Hz over 0..5 s."""
    tracks: dict[str, list] = {}
    names: dict[str, str] = {}
    times = _frame_times(scene)
    for fi in range(scene.current_index, len(scene.frames)):
        f = scene.frames[fi]
        a = f.annotations
        if len(a.track_tokens) == 0:
            continue
        pose = f.ego.pose
        c, s = np.cos(pose[2]), np.sin(pose[2])
        gx = pose[0] + c * a.boxes[:, 0] - s * a.boxes[:, 1]
        gy = pose[1] + s * a.boxes[:, 0] + c * a.boxes[:, 1]
        local = global_to_ego(np.stack([gx, gy, a.boxes[:, 6] + pose[2]], -1), origin)
        rot = pose[2] - origin[2]
        vx = np.cos(rot) * a.velocity_3d[:, 0] - np.sin(rot) * a.velocity_3d[:, 1]
        vy = np.sin(rot) * a.velocity_3d[:, 0] + np.cos(rot) * a.velocity_3d[:, 1]
        for i, tok in enumerate(a.track_tokens):
            tracks.setdefault(tok, []).append((times[fi], *local[i], a.boxes[i, 3], a.boxes[i, 4], vx[i], vy[i]))
            names[tok] = a.names[i]
    steps = np.arange(K.NUM_OBS_STEPS) * K.DT
    tokens = sorted(tracks)
    boxes = np.full((len(tokens), K.NUM_OBS_STEPS, 5), np.nan)
    vel = np.full((len(tokens), K.NUM_OBS_STEPS, 2), np.nan)
    valid = np.zeros((len(tokens), K.NUM_OBS_STEPS), dtype=bool)
    seen_now = np.zeros(len(tokens), dtype=bool)
    for n, tok in enumerate(tokens):
        obs = np.array(sorted(tracks[tok]))
        seen_now[n] = abs(obs[0, 0]) < 1e-6  # detected in the current frame
        if len(obs) == 1:  # seen once: held static over the whole horizon
            boxes[n] = obs[0, 1:6]
            vel[n] = obs[0, 6:8]
            valid[n] = True
            continue
        inside = (steps >= obs[0, 0] - 1e-6) & (steps <= obs[-1, 0] + 1e-6)
        obs[:, 3] = np.unwrap(obs[:, 3])
        cols = [np.interp(steps[inside], obs[:, 0], obs[:, k]) for k in range(1, 8)]
        boxes[n, inside] = np.stack(cols[:5], -1)
        boxes[n, inside, 2] = wrap_angle(boxes[n, inside, 2])
        vel[n, inside] = np.stack(cols[5:], -1)
        valid[n, inside] = True
    return boxes, vel, valid, [names[t] for t in tokens], tokens, seen_now


def _past(scene: Scene) -> np.ndarray:
    """(14, 7) ego states at -1.5..-0.2 s from the 2 Hz history (linear; clamped where history is short)."""
    hist = scene.frames[: scene.num_history_frames]
    times = _frame_times(scene)[: scene.num_history_frames]
    poses = scene.history_trajectory()
    poses[:, 2] = np.unwrap(poses[:, 2])
    v = np.stack([f.ego.velocity for f in hist])
    a = np.stack([f.ego.acceleration for f in hist])
    table = np.concatenate([poses, v, a], axis=1)
    t = -1.5 + np.arange(K.NUM_PAST_STATES) * K.DT
    out = np.stack([np.interp(t, times, table[:, k]) for k in range(7)], -1)
    out[:, 2] = wrap_angle(out[:, 2])
    return out


def _lights(scene: Scene, lane_ids: list[str], is_connector: np.ndarray, on_route: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    future = scene.frames[scene.current_index :]
    states = [dict(f.traffic_lights) for f in future]
    mentioned = {lc for s in states for lc in s}
    idx = [i for i, lid in enumerate(lane_ids) if lid in mentioned and is_connector[i] and on_route[i]]
    red = np.zeros((len(idx), K.NUM_OBS_STEPS), dtype=bool)
    for row, i in enumerate(idx):
        for step in range(K.NUM_OBS_STEPS):  # 2 Hz states held for five 0.1 s steps; last state held after
            red[row, step] = bool(states[min(step // 5, len(states) - 1)].get(lane_ids[i], False))
    return np.array(idx, dtype=np.int64), red


def build_metric_cache(scene: Scene, map_api: MapLike, params: MetricsParams | None = None,
                       is_synthetic: bool = False) -> MetricCache:
    params = params or MetricsParams()
    cur = scene.current_frame
    origin = np.asarray(cur.ego.pose, dtype=np.float64)
    where = f"scene {scene.token!r} (log {scene.log_name!r})"
    if not cur.roadblock_ids:
        raise ValueError(f"{where}: field 'roadblock_ids' of the current frame is empty")
    xy = origin[:2]
    drivable = [(DRIVABLE_LAYERS.index(p.layer), p.id, ring) for p in map_api.drivable_polygons(xy, params.map_radius_m)
                for ring in _rings(p.polygon)]
    plan = map_api.route_plan(list(cur.roadblock_ids), origin)
    route_lanes = set(map_api.route_lane_ids(list(plan.roadblock_ids)))
    lanes = [(p.layer == "lane_connector", p.id, ring) for p in map_api.lane_polygons(xy, params.map_radius_m)
             for ring in _rings(p.polygon)]
    to_ego = lambda pts: global_to_ego(np.asarray(pts, dtype=np.float64), origin)  # noqa: E731
    dv, do = flatten_polygons([to_ego(r) for _, _, r in drivable])
    lv, lo = flatten_polygons([to_ego(r) for _, _, r in lanes])
    lane_ids = [i for _, i, _ in lanes]
    is_conn = np.array([c for c, _, _ in lanes], dtype=bool)
    on_route = np.array([i in route_lanes for i in lane_ids], dtype=bool)
    centerline = to_ego(plan.centerline) if len(plan.centerline) >= 2 else np.array([[0.0, 0.0], [200.0, 0.0]])
    limit = map_api.speed_limit(plan.lane_path[0]) if plan.lane_path else None
    light_idx, light_red = _lights(scene, lane_ids, is_conn, on_route)
    boxes, vel, valid, names, tokens, seen_now = _agents(scene, origin)
    human = np.full((K.PLAN_POSES, 3), np.nan)
    fut = scene.future_trajectory(K.PLAN_POSES)
    human[: len(fut)] = fut
    hist = scene.history_trajectory()
    yaw_rate = float(wrap_angle(hist[-1, 2] - hist[-2, 2]) / K.PLAN_DT) if len(hist) >= 2 else 0.0
    cache = MetricCache(
        token=scene.token, log_name=scene.log_name, timestamp_us=int(cur.timestamp_us), map_location=scene.map_location,
        origin=origin, ego_velocity=np.asarray(cur.ego.velocity, dtype=np.float64),
        ego_acceleration=np.asarray(cur.ego.acceleration, dtype=np.float64),
        driving_command=np.asarray(cur.ego.driving_command, dtype=np.int64), human_future=human, past_states=_past(scene),
        reference=np.zeros((K.NUM_OBS_STEPS, 3)), centerline=centerline,
        drivable_vertices=dv, drivable_offsets=do, drivable_layers=np.array([d[0] for d in drivable], dtype=np.int8),
        drivable_ids=[d[1] for d in drivable], lane_vertices=lv, lane_offsets=lo, lane_is_connector=is_conn,
        lane_on_route=on_route, lane_ids=lane_ids, light_lane_index=light_idx, light_red=light_red,
        agent_boxes=boxes, agent_valid=valid, agent_velocity=vel, agent_names=names, agent_tokens=tokens,
        speed_limit=float(limit) if limit is not None else float("nan"), ego_yaw_rate=yaw_rate, is_synthetic=is_synthetic,
        agent_seen_at_start=seen_now,
    )
    try:
        cache.validate(where)
    except ValueError as e:
        raise ValueError(f"building the metric cache failed: {e}") from e
    index = scene_index(cache)  # built once: PDM-Closed's forecast and the scorer share the map's grids
    cache.reference = pdm_closed(cache)
    cache._runtime = {}
    cache.remember("index", index)  # the index does not read the reference
    return cache.validate(where)
