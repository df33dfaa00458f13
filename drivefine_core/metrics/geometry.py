"""Vectorised geometry for the fast scorer: ego boxes, oriented-box overlap (separating axes), segment / box
hits, polyline projection and point-segment distance. The grid indexes of map polygons and polylines are in
map_index."""

from __future__ import annotations

import numpy as np

from drivefine_core.metrics import constants as K


def ego_center(states: np.ndarray) -> np.ndarray:
    """(..., >=3) rear-axle poses -> (..., 2) box centres."""
    h = states[..., 2]
    return np.stack([states[..., 0] + K.REAR_AXLE_TO_CENTER * np.cos(h),
                     states[..., 1] + K.REAR_AXLE_TO_CENTER * np.sin(h)], axis=-1)


def box_corners(center: np.ndarray, heading: np.ndarray, half_length: np.ndarray | float,
                half_width: np.ndarray | float) -> np.ndarray:
    """-> (..., 4, 2) corners in the order front-left, rear-left, rear-right, front-right."""
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    sl = np.array([1.0, -1.0, -1.0, 1.0]) * np.asarray(half_length)[..., None]
    sw = np.array([1.0, 1.0, -1.0, -1.0]) * np.asarray(half_width)[..., None]
    x = center[..., 0:1] + c * sl - s * sw
    y = center[..., 1:2] + s * sl + c * sw
    return np.stack([x, y], axis=-1)


def ego_corners(states: np.ndarray) -> np.ndarray:
    return box_corners(ego_center(states), states[..., 2], K.EGO_HALF_LENGTH, K.EGO_HALF_WIDTH)


def _dot(ax, ay, bx, by):
    """a . b written out: the same float operations as np.sum(a * b, -1) over a last axis of two."""
    return ax * bx + ay * by


def boxes_overlap(c1, h1, l1, w1, c2, h2, l2, w2) -> np.ndarray:
    """Oriented boxes (centre, heading, half length, half width; broadcastable) intersect (touching counts)."""
    dx, dy = c2[..., 0] - c1[..., 0], c2[..., 1] - c1[..., 1]
    cos1, sin1, cos2, sin2 = np.cos(h1), np.sin(h1), np.cos(h2), np.sin(h2)
    u1, v1, u2, v2 = (cos1, sin1), (-sin1, cos1), (cos2, sin2), (-sin2, cos2)
    sep = np.zeros(np.broadcast_shapes(dx.shape, np.shape(l2), np.shape(l1)), dtype=bool)
    for axis in (u1, v1, u2, v2):
        r1 = l1 * np.abs(_dot(*u1, *axis)) + w1 * np.abs(_dot(*v1, *axis))
        r2 = l2 * np.abs(_dot(*u2, *axis)) + w2 * np.abs(_dot(*v2, *axis))
        sep |= np.abs(_dot(dx, dy, *axis)) > r1 + r2
    return ~sep


def segment_hits_box(p, q, c, h, l, w) -> np.ndarray:
    """Segment p-q (..., 2) intersects the oriented box (c, h, half l, half w)."""
    m = (p + q) / 2.0
    hv = (q - p) / 2.0
    d = m - c
    u = np.stack([np.cos(h), np.sin(h)], -1)
    v = np.stack([-np.sin(h), np.cos(h)], -1)
    n = np.stack([-hv[..., 1], hv[..., 0]], -1)
    sep = np.zeros(np.broadcast_shapes(d.shape[:-1], np.shape(l)), dtype=bool)
    for axis in (u, v, n):
        rs = np.abs(np.sum(hv * axis, -1))
        rb = l * np.abs(np.sum(u * axis, -1)) + w * np.abs(np.sum(v * axis, -1))
        sep |= np.abs(np.sum(d * axis, -1)) > rs + rb
    return ~sep


def _point_segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of (..., 2) points to segments a-b (broadcastable (..., 2))."""
    ab = b - a
    rel = points - a
    denom = np.maximum(_dot(ab[..., 0], ab[..., 1], ab[..., 0], ab[..., 1]), 1e-300)
    t = np.clip(_dot(rel[..., 0], rel[..., 1], ab[..., 0], ab[..., 1]) / denom, 0.0, 1.0)
    proj = a + t[..., None] * ab
    off = points - proj
    return np.sqrt(_dot(off[..., 0], off[..., 1], off[..., 0], off[..., 1]))  # = np.linalg.norm(off, axis=-1)


def project_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """(Q, 2) points -> (Q,) arc length of the nearest point on the polyline (first minimum wins)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    seg_len = np.linalg.norm(ab, axis=-1)
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    denom = np.maximum(seg_len**2, 1e-300)
    rel = points[:, None, :] - a[None]
    t = np.clip(np.sum(rel * ab[None], -1) / denom, 0.0, 1.0)
    dist = np.linalg.norm(rel - t[..., None] * ab[None], axis=-1)
    k = np.argmin(dist, axis=1)
    return cum[k] + t[np.arange(len(points)), k] * seg_len[k]
