"""Polyline helpers in plain numpy (global metres)."""

from __future__ import annotations

import numpy as np


def cubic_bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    u = 1.0 - t
    return u**3 * p0 + 3 * u**2 * t * p1 + 3 * u * t**2 * p2 + t**3 * p3


def arc_length(xy: np.ndarray) -> np.ndarray:
    """Cumulative arc length (N,) of an (N, 2) polyline, starting at 0."""
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def resample(xy: np.ndarray, step: float) -> np.ndarray:
    """Resample a polyline at (about) uniform spacing `step`, keeping both ends."""
    s = arc_length(xy)
    n = max(2, int(np.ceil(s[-1] / step)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, xy[:, 0]), np.interp(t, s, xy[:, 1])], axis=1)


def headings(xy: np.ndarray) -> np.ndarray:
    """Heading at every vertex (central differences; one-sided at the ends)."""
    d = np.gradient(xy, axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def left_normals(xy: np.ndarray) -> np.ndarray:
    h = headings(xy)
    return np.stack([-np.sin(h), np.cos(h)], axis=1)


def offset(xy: np.ndarray, distance: float) -> np.ndarray:
    """Parallel polyline `distance` metres to the left (negative: right)."""
    return xy + distance * left_normals(xy)


def curvature(xy: np.ndarray) -> np.ndarray:
    """Signed curvature (1/m) at every vertex."""
    h = np.unwrap(headings(xy))
    s = arc_length(xy)
    ds = np.gradient(s)
    return np.gradient(h) / np.maximum(ds, 1e-6)


def strip_polygon(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Closed ring (M, 2) between a left and a right edge that run in the same direction."""
    ring = np.concatenate([left, right[::-1], left[:1]], axis=0)
    return ring


def rotate(xy: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return xy @ np.array([[c, s], [-s, c]])


def yaw_to_quaternion(yaw: float) -> list[float]:
    """[w, x, y, z] of a rotation about z."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def pose_matrix(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    m = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = [x, y, z]
    return m
