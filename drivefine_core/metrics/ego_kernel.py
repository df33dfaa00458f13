"""The ego's box centres and corners of every state, compiled with numba (the array version built a dozen
(rows, steps, 4) temporaries). cos / sin of the headings come from numpy, so the numbers are bit for bit those
of geometry.ego_center and geometry.ego_corners (tests compare them)."""

from __future__ import annotations

import numba
import numpy as np

from drivefine_core.metrics import constants as K

_SL = (1.0, -1.0, -1.0, 1.0)  # corner order of geometry.box_corners: front-left, rear-left, rear-right, front-right
_SW = (1.0, 1.0, -1.0, -1.0)


@numba.njit(cache=True)
def _boxes(x: np.ndarray, y: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    centers = np.empty((n, 2))
    corners = np.empty((n, 4, 2))
    for i in range(n):
        c, s = cos[i], sin[i]
        cx = x[i] + K.REAR_AXLE_TO_CENTER * c
        cy = y[i] + K.REAR_AXLE_TO_CENTER * s
        centers[i, 0], centers[i, 1] = cx, cy
        for j in range(4):
            sl, sw = _SL[j] * K.EGO_HALF_LENGTH, _SW[j] * K.EGO_HALF_WIDTH
            corners[i, j, 0] = cx + c * sl - s * sw
            corners[i, j, 1] = cy + s * sl + c * sw
    return centers, corners


def ego_boxes(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., >=3) rear-axle poses -> box centres (..., 2) and corners (..., 4, 2)."""
    shape = states.shape[:-1]
    flat = states.reshape(-1, states.shape[-1])
    h = flat[:, 2]
    centers, corners = _boxes(np.ascontiguousarray(flat[:, 0]), np.ascontiguousarray(flat[:, 1]), np.cos(h), np.sin(h))
    return centers.reshape(*shape, 2), corners.reshape(*shape, 4, 2)


@numba.njit(cache=True)
def _bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, k = points.shape[0], points.shape[1]
    lo = np.empty((n, 2))
    hi = np.empty((n, 2))
    for i in range(n):
        for d in range(2):
            a = b = points[i, 0, d]
            for j in range(1, k):
                a = min(a, points[i, j, d])
                b = max(b, points[i, j, d])
            lo[i, d], hi[i, d] = a, b
    return lo, hi


def bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., K, 2) -> the min and max over K, each (..., 2): points.min(axis=-2) / max(axis=-2) in one pass
    (numpy reduces a short inner axis slowly)."""
    lo, hi = _bounds(np.ascontiguousarray(points, dtype=np.float64).reshape(-1, *points.shape[-2:]))
    return lo.reshape(*points.shape[:-2], 2), hi.reshape(*points.shape[:-2], 2)
