"""Tiny OpenScene-format logs written by hand for the reader tests (docs/navsim-format-and-metrics.md section 1)."""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

CAMS = ("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0")


def token(log_name: str, i: int) -> str:
    return hashlib.sha256(f"{log_name}/{i}".encode()).hexdigest()[:16]


def make_frame(i: int, log_name: str = "log-a", roadblocks: list[str] | None = None, n_boxes: int = 2) -> dict[str, Any]:
    """Frame i of a log driving along +x at 5 m/s with a slight left turn; heading = 0.01 * i rad."""
    x, y, yaw = 100.0 + 2.5 * i, 50.0 + 0.1 * i, 0.01 * i
    quat = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
    ego2global = np.eye(4)
    ego2global[:3, 3] = [x, y, 0.0]
    boxes = np.array([[10.0 + k, -2.0 * k, 0.5, 4.5, 1.9, 1.6, 0.1 * k] for k in range(n_boxes)]).reshape(-1, 7)
    return {
        "token": token(log_name, i),
        "frame_idx": i,
        "timestamp": 1_600_000_000_000_000 + 500_000 * i,
        "log_name": log_name,
        "log_token": "logtoken",
        "scene_name": "scene",
        "scene_token": "scenetoken",
        "map_location": "las_vegas",
        "vehicle_name": "car",
        "sample_prev": None if i == 0 else token(log_name, i - 1),
        "sample_next": token(log_name, i + 1),
        "roadblock_ids": ["1", "2"] if roadblocks is None else roadblocks,
        "can_bus": np.concatenate([[x, y, 0.0], quat, np.zeros(11)]),
        "ego2global_translation": np.array([x, y, 0.0]),
        "ego2global_rotation": np.array(quat),
        "lidar2ego_translation": np.array([1.5, 0.0, 1.8]),
        "lidar2ego_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
        "ego2global": ego2global,
        "lidar2ego": np.eye(4),
        "lidar2global": ego2global.copy(),
        "ego_dynamic_state": [5.0, 0.1, 0.2, 0.01],
        "driving_command": np.array([0, 1, 0, 0]),
        "traffic_lights": [(7, True), ("8", False)],
        "lidar_path": f"{log_name}/MergedPointCloud/{token(log_name, i)}.pcd",
        "cams": {
            c: {
                "data_path": f"{log_name}/{c}/{token(log_name, i)}.jpg",
                "sensor2lidar_rotation": np.eye(3),
                "sensor2lidar_translation": np.array([0.1, 0.2, 0.3]),
                "cam_intrinsic": np.array([[1545.0, 0, 960], [0, 1545.0, 560], [0, 0, 1]]),
                "distortion": np.array([-0.35, 0.15, 0.0, 0.0, -0.03]),
            }
            for c in CAMS
        },
        "anns": {
            "gt_boxes": boxes,
            "gt_names": ["vehicle", "pedestrian"][:n_boxes] + ["vehicle"] * max(0, n_boxes - 2),
            "gt_velocity_3d": np.ones((n_boxes, 3)),
            "instance_tokens": [f"inst{k}" for k in range(n_boxes)],
            "track_tokens": [f"track{k}" for k in range(n_boxes)],
        },
    }


def make_log(n: int, log_name: str = "log-a", empty_route_at: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [make_frame(i, log_name, roadblocks=[] if i in empty_route_at else None) for i in range(n)]


def write_log(root: Path, split: str, log_name: str, frames: list[dict[str, Any]], protocol: int = 4) -> Path:
    path = root / "navsim_logs" / split / f"{log_name}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(frames, protocol=protocol))
    return path
