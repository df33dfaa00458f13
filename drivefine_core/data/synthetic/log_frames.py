"""Simulation result -> OpenScene per-frame dicts (every key of the NAVSIM log format)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from drivefine_core.data.schema import CAMERA_NAMES, global_to_ego
from drivefine_core.data.synthetic.agents import Cast
from drivefine_core.data.synthetic.cameras import LIDAR2EGO_T, Camera
from drivefine_core.data.synthetic.geometry import pose_matrix, yaw_to_quaternion
from drivefine_core.data.synthetic.lights import RED, LightTable
from drivefine_core.data.synthetic.map_types import SyntheticMap
from drivefine_core.data.synthetic.routes import STEP_M
from drivefine_core.data.synthetic.simulate import SimResult

VEHICLE_NAME = "synthetic_pacifica"
COMMAND_LOOKAHEAD_M = 20.0
COMMAND_LATERAL_M = 2.0
LIGHT_RADIUS_M = 100.0
SCENE_CHUNK_FRAMES = 40  # OpenScene cuts logs into scenes of 20 s
MIN_TRACK_FRAMES = 2  # an annotated track stays at least this many consecutive frames (while it exists)


def lidar_path(log_name: str, frame_token: str) -> str:
    return f"{log_name}/MergedPointCloud/{frame_token}.pcd"


def token(rng: np.random.Generator) -> str:
    return rng.bytes(8).hex()


def driving_command(path_xy: np.ndarray, s: float, pose: np.ndarray, step_m: float) -> np.ndarray:
    """One-hot [left, straight, right, unknown] from the route centerline 20 m ahead."""
    i = int(round((s + COMMAND_LOOKAHEAD_M) / step_m))
    if i >= len(path_xy):
        return np.array([0, 0, 0, 1], dtype=np.int64)
    y = global_to_ego(path_xy[i], pose)[1]
    if y >= COMMAND_LATERAL_M:
        return np.array([1, 0, 0, 0], dtype=np.int64)
    if y <= -COMMAND_LATERAL_M:
        return np.array([0, 0, 1, 0], dtype=np.int64)
    return np.array([0, 1, 0, 0], dtype=np.int64)


def build_frames(
    smap: SyntheticMap, cast: Cast, sim: SimResult, lights: LightTable, cams: dict[str, Camera], log_name: str,
    t0_us: int, radius_m: float, rng: np.random.Generator, *, images: Collection[str], lidar: bool = False,
    exit_margin_m: float = 10.0,
) -> list[dict]:
    """Annotations follow a hysteresis, like real perception tracks: a track enters when it comes within `radius_m`
    of the ego and leaves only once it is farther than `radius_m + exit_margin_m`, and an entered track is kept at
    least MIN_TRACK_FRAMES frames while it exists, so no track is annotated in a single frame only (NAVSIM's metric
    caching fails on those).

    `images`: the cameras whose JPEGs are written for every frame; `lidar`: whether a point cloud is.

    A log never names a file that is not written: every camera of the rig keeps its calibration under `cams`
    (NAVSIM builds its Cameras from all eight keys), but only the cameras in `images` carry a `data_path`; the
    others have `data_path` None. `lidar_path` is None unless `lidar` (docs/navsim-rules.md, sensor files)."""
    n = len(sim.times_s)
    tokens = [token(rng) for _ in range(n)]
    log_token = token(rng)
    scene_tokens = [token(rng) for _ in range(n // SCENE_CHUNK_FRAMES + 1)]
    V, S = cast.vehicles, cast.statics
    n_veh, n_ped = sim.veh_xy.shape[1], sim.ped_xy.shape[1]
    veh_tracks = [token(rng) for _ in range(n_veh)]
    ped_tracks = [token(rng) for _ in range(n_ped)]
    static_tracks = [token(rng) for _ in range(len(S.names))]
    light_xy = np.array([smap.network.lane_connectors[c].centerline.mean(axis=0) for c in lights.connector_ids])
    lidar2ego = pose_matrix(*LIDAR2EGO_T, 0.0)
    path = V.paths[0]
    route_ptr = 0
    shown_for: dict[str, int] = {}  # track token -> consecutive frames annotated up to the previous frame
    frames = []
    for f in range(n):
        x, y = sim.ego_xy[f]
        h, v, a, w = sim.ego_heading[f], sim.ego_speed[f], sim.ego_accel[f], sim.ego_yaw_rate[f]
        pose = np.array([x, y, h])
        q = yaw_to_quaternion(float(h))
        ego2global = pose_matrix(float(x), float(y), 0.0, float(h))
        rb = path.roadblock_at(float(sim.ego_s[f]))
        if rb in cast.route[route_ptr:]:
            route_ptr = cast.route.index(rb, route_ptr)
        # annotations: vehicles (not the ego), pedestrians and statics near the ego
        act = sim.veh_active[f].copy()
        act[0] = False
        xy_all = np.concatenate([sim.veh_xy[f][act], sim.ped_xy[f], S.xy])
        h_all = np.concatenate([sim.veh_heading[f][act], sim.ped_heading[f], S.heading])
        sp_all = np.concatenate([sim.veh_speed[f][act], sim.ped_speed[f], np.zeros(len(S.names))])
        dims = np.concatenate([V.dims[act], np.tile([0.6, 0.6, 1.75], (n_ped, 1)), S.dims]).reshape(-1, 3)
        names = ["vehicle"] * int(act.sum()) + ["pedestrian"] * n_ped + list(S.names)
        tracks = [veh_tracks[i] for i in np.flatnonzero(act)] + ped_tracks + static_tracks
        local = global_to_ego(np.column_stack([xy_all, h_all]), pose) if len(xy_all) else np.zeros((0, 3))
        dist = np.hypot(local[:, 0], local[:, 1])
        run = np.array([shown_for.get(t, 0) for t in tracks], dtype=int)
        stays = (run > 0) & ((dist <= radius_m + exit_margin_m) | (run < MIN_TRACK_FRAMES))
        keep = np.flatnonzero((dist <= radius_m) | stays)
        shown_for = {tracks[i]: int(run[i]) + 1 for i in keep}
        rel = h_all[keep] - h
        boxes = np.column_stack([local[keep, :2], dims[keep, 2] / 2, dims[keep], local[keep, 2]]).reshape(-1, 7)
        vel = np.column_stack([sp_all[keep] * np.cos(rel), sp_all[keep] * np.sin(rel), np.zeros(len(keep))])
        near_lights = np.flatnonzero(np.hypot(*(light_xy - (x, y)).T) <= LIGHT_RADIUS_M) if len(light_xy) else []
        cam_dicts = {}
        for name in CAMERA_NAMES:
            cam = cams[name]
            cam_dicts[name] = {
                "data_path": f"{log_name}/{name}/{tokens[f]}.jpg" if name in images else None,
                "sensor2lidar_rotation": cam.sensor2lidar_rotation.copy(),
                "sensor2lidar_translation": cam.sensor2lidar_translation.copy(),
                "cam_intrinsic": cam.intrinsic.copy(),
                "distortion": np.zeros(5),
            }
        frames.append({
            "token": tokens[f],
            "frame_idx": f,
            "timestamp": int(t0_us + round(sim.times_s[f] * 1e6)),
            "log_name": log_name,
            "log_token": log_token,
            "scene_name": f"{log_name}-{f // SCENE_CHUNK_FRAMES:04d}",
            "scene_token": scene_tokens[f // SCENE_CHUNK_FRAMES],
            "map_location": smap.network.location,
            "vehicle_name": VEHICLE_NAME,
            "sample_prev": tokens[f - 1] if f > 0 else None,
            "sample_next": tokens[f + 1] if f + 1 < n else None,
            "roadblock_ids": list(cast.route[route_ptr:]),
            "can_bus": np.array([x, y, 0.0, *q, a, v * w, 0.0, v, 0.0, 0.0, 0.0, 0.0, w, 0.0, 0.0]),
            "ego2global_translation": np.array([x, y, 0.0]),
            "ego2global_rotation": np.array(q),
            "lidar2ego_translation": LIDAR2EGO_T.copy(),
            "lidar2ego_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
            "ego2global": ego2global,
            "lidar2ego": lidar2ego.copy(),
            "lidar2global": ego2global @ lidar2ego,
            "ego_dynamic_state": np.array([v, 0.0, a, v * w]),
            "driving_command": driving_command(path.xy, float(sim.ego_s[f]), pose, STEP_M),
            "traffic_lights": [(lights.connector_ids[i], bool(sim.light_states[f, i] == RED)) for i in near_lights],
            "lidar_path": lidar_path(log_name, tokens[f]) if lidar else None,
            "cams": cam_dicts,
            "anns": {
                "gt_boxes": boxes,
                "gt_names": [names[i] for i in keep],
                "gt_velocity_3d": vel,
                "instance_tokens": [token(rng) for _ in keep],
                "track_tokens": [tracks[i] for i in keep],
            },
        })
    return frames
