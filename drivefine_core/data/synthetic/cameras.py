"""Sensor rig of the synthetic ego: nuPlan-like camera placement, 1920x1080 intrinsics scaled to the image size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivefine_core.data.schema import CAMERA_NAMES

FULL_W, FULL_H = 1920, 1080
FULL_F, FULL_CX, FULL_CY = 1545.0, 960.0, 560.0
LIDAR2EGO_T = np.array([1.5, 0.0, 1.9])
# camera -> sensor axes: camera x right, y down, z forward; lidar / ego: x forward, y left, z up
CAM_AXES = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
_RIG = {  # name: (yaw deg, position in the ego frame)
    "CAM_F0": (0.0, (1.9, 0.0, 1.6)),
    "CAM_L0": (55.0, (1.75, 0.45, 1.6)),
    "CAM_R0": (-55.0, (1.75, -0.45, 1.6)),
    "CAM_L1": (110.0, (1.0, 0.9, 1.6)),
    "CAM_R1": (-110.0, (1.0, -0.9, 1.6)),
    "CAM_L2": (150.0, (0.0, 0.9, 1.6)),
    "CAM_R2": (-150.0, (0.0, -0.9, 1.6)),
    "CAM_B0": (180.0, (-0.9, 0.0, 1.6)),
}


@dataclass(frozen=True)
class Camera:
    name: str
    width: int
    height: int
    intrinsic: np.ndarray  # (3, 3)
    sensor2lidar_rotation: np.ndarray  # (3, 3)
    sensor2lidar_translation: np.ndarray  # (3,)

    @property
    def cam2ego(self) -> np.ndarray:
        """4x4 camera -> ego (rear axle) transform (lidar2ego has no rotation)."""
        m = np.eye(4)
        m[:3, :3] = self.sensor2lidar_rotation
        m[:3, 3] = self.sensor2lidar_translation + LIDAR2EGO_T
        return m


def _rz(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def camera(name: str, width: int, height: int) -> Camera:
    if name not in _RIG:
        raise ValueError(f"unknown camera {name!r}; expected one of {CAMERA_NAMES}")
    yaw, pos = _RIG[name]
    sx, sy = width / FULL_W, height / FULL_H
    k = np.array([[FULL_F * sx, 0.0, FULL_CX * sx], [0.0, FULL_F * sy, FULL_CY * sy], [0.0, 0.0, 1.0]])
    return Camera(name, width, height, k, _rz(np.deg2rad(yaw)) @ CAM_AXES, np.asarray(pos) - LIDAR2EGO_T)


def rig(width: int, height: int) -> dict[str, Camera]:
    return {name: camera(name, width, height) for name in CAMERA_NAMES}


def project(cam: Camera, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame points (..., 3) -> pixel coordinates (..., 2) and camera depth (...)."""
    m = np.linalg.inv(cam.cam2ego)
    pc = points_ego @ m[:3, :3].T + m[:3, 3]
    z = pc[..., 2]
    uv = (pc @ cam.intrinsic.T)[..., :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)[..., None]
    return uv, z
