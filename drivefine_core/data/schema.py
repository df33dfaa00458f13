"""Typed scene records shared by every stage.

Poses are [x, y, heading]. Global poses are in the map's projected CRS (metres). Ego-frame poses are
relative to the rear axle of the current frame: x forward, y left, heading counter-clockwise, radians.
A planner's trajectory is 8 ego-frame poses at 0.5 s (t = 0 excluded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CAMERA_NAMES = ("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0")
AGENT_NAMES = ("vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier", "czone_sign", "generic_object")
DRIVING_COMMANDS = ("left", "straight", "right", "unknown")
FRAME_DT_S = 0.5
TRAJECTORY_POSES = 8


def wrap_angle(a: np.ndarray | float) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def global_to_ego(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Global [..., 3] poses (or [..., 2] points) into the frame of the global pose `origin` (3,)."""
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx = poses[..., 0] - origin[0]
    dy = poses[..., 1] - origin[1]
    out = np.empty_like(poses)
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    if poses.shape[-1] >= 3:
        out[..., 2] = wrap_angle(poses[..., 2] - origin[2])
        out[..., 3:] = poses[..., 3:]
    return out


def ego_to_global(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Inverse of global_to_ego."""
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    out = np.empty_like(poses)
    out[..., 0] = origin[0] + c * poses[..., 0] - s * poses[..., 1]
    out[..., 1] = origin[1] + s * poses[..., 0] + c * poses[..., 1]
    if poses.shape[-1] >= 3:
        out[..., 2] = wrap_angle(poses[..., 2] + origin[2])
        out[..., 3:] = poses[..., 3:]
    return out


@dataclass
class EgoStatus:
    pose: np.ndarray  # (3,) global [x, y, heading]
    velocity: np.ndarray  # (2,) ego frame [vx, vy], m/s
    acceleration: np.ndarray  # (2,) ego frame [ax, ay], m/s^2
    driving_command: np.ndarray  # (4,) int one-hot [left, straight, right, unknown]


@dataclass
class Annotations:
    boxes: np.ndarray  # (N, 7) ego frame [x, y, z, length, width, height, yaw]
    names: list[str]
    velocity_3d: np.ndarray  # (N, 3) ego frame
    track_tokens: list[str]

    @staticmethod
    def empty() -> "Annotations":
        return Annotations(np.zeros((0, 7)), [], np.zeros((0, 3)), [])


@dataclass
class CameraInfo:
    data_path: str  # relative to the sensor-blob root: <log>/CAM_F0/<token>.jpg
    intrinsic: np.ndarray  # (3, 3)
    sensor2lidar_rotation: np.ndarray  # (3, 3)
    sensor2lidar_translation: np.ndarray  # (3,)
    distortion: np.ndarray  # (5,)


@dataclass
class Frame:
    token: str
    timestamp_us: int
    ego: EgoStatus
    annotations: Annotations
    traffic_lights: list[tuple[str, bool]]  # (lane_connector_id, is_red)
    roadblock_ids: list[str]
    cameras: dict[str, CameraInfo] = field(default_factory=dict)
    lidar2ego: np.ndarray = field(default_factory=lambda: np.eye(4))  # (4, 4)


@dataclass
class Scene:
    token: str  # the current frame's token
    log_name: str
    map_location: str
    frames: list[Frame]
    num_history_frames: int = 4

    @property
    def current_index(self) -> int:
        return self.num_history_frames - 1

    @property
    def current_frame(self) -> Frame:
        return self.frames[self.current_index]

    def _relative(self, frames: list[Frame]) -> np.ndarray:
        origin = self.current_frame.ego.pose
        if not frames:
            return np.zeros((0, 3))
        return global_to_ego(np.stack([f.ego.pose for f in frames]), origin)

    def history_trajectory(self) -> np.ndarray:
        """(num_history_frames, 3) ego-frame poses; the last row is the current pose (zeros)."""
        return self._relative(self.frames[: self.num_history_frames])

    def future_trajectory(self, num_poses: int = TRAJECTORY_POSES) -> np.ndarray:
        """(num_poses, 3) ego-frame poses of the logged future at 0.5 s steps."""
        future = self.frames[self.num_history_frames : self.num_history_frames + num_poses]
        return self._relative(future)
