"""A plain synthetic merged point cloud per frame: rings on the ground plus points on every annotated box,
in the lidar frame (lidar2ego is a pure translation here)."""

from __future__ import annotations

import numpy as np

from drivefine_core.data.synthetic.cameras import LIDAR2EGO_T

GROUND_RADII_M = (4.0, 8.0, 16.0, 32.0, 64.0)
GROUND_POINTS_PER_RING = 90
# box surface samples in units of half length / half width / height above the box bottom
_BOX_SAMPLES = np.array([[sx, sy, sz] for sx in (-1, 0, 1) for sy in (-1, 0, 1) for sz in (0.0, 0.5, 1.0)
                         if abs(sx) == 1 or abs(sy) == 1 or sz == 1.0], dtype=float)


def frame_points(frame: dict) -> np.ndarray:
    """(N, 6) float32 [x, y, z, intensity, ring, lidar_info] for one OpenScene frame dict."""
    ang = np.linspace(0.0, 2 * np.pi, GROUND_POINTS_PER_RING, endpoint=False)
    ground = [np.column_stack([r * np.cos(ang), r * np.sin(ang), np.zeros_like(ang), np.full_like(ang, 0.1),
                               np.full_like(ang, ring), np.zeros_like(ang)]) for ring, r in enumerate(GROUND_RADII_M)]
    boxes = np.asarray(frame["anns"]["gt_boxes"], float).reshape(-1, 7)
    parts = list(ground)
    for x, y, z, length, width, height, yaw in boxes:
        local = _BOX_SAMPLES * [length / 2, width / 2, height]
        c, s = np.cos(yaw), np.sin(yaw)
        px = x + c * local[:, 0] - s * local[:, 1]
        py = y + s * local[:, 0] + c * local[:, 1]
        pz = z - height / 2 + local[:, 2]
        k = len(local)
        parts.append(np.column_stack([px, py, pz, np.full(k, 0.5), np.full(k, len(GROUND_RADII_M)), np.zeros(k)]))
    pts = np.concatenate(parts)
    pts[:, :3] -= LIDAR2EGO_T  # ego frame -> lidar frame
    return pts.astype(np.float32)
