"""Polygon / polyline edges cut into pieces no longer than a grid cell, named rather than stored: a piece is
(start vertex, end vertex, k, n), the k-th of n equal cuts of that edge. A query recomputes a piece's ends
from the scene's vertices with the very operations of the cut (`cut`), so its coordinates are bit for bit
those the grid was built from, while a table row takes ~10 bytes instead of 40 (four float64 ends and an owner)."""

from __future__ import annotations

import numpy as np

START, END, PART, PARTS = range(4)  # columns of a piece row: it is the PART-th of PARTS cuts of edge START-END
OWNER = 4  # polygon tables add the polygon the edge belongs to


def cut(a: np.ndarray, b: np.ndarray, max_len: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut segments a-b into collinear pieces no longer than max_len -> (starts, ends, index of the parent
    segment, k, n) of every piece."""
    n = np.maximum(1, np.ceil(np.linalg.norm(b - a, axis=1) / max_len).astype(np.int64))
    parent = np.repeat(np.arange(len(a)), n)
    k = np.arange(len(parent)) - np.repeat(np.cumsum(n) - n, n)
    x1, y1, x2, y2 = piece_ends(np.stack([a[parent], b[parent]], axis=1), k, n[parent])
    return np.stack([x1, y1], axis=1), np.stack([x2, y2], axis=1), parent, k, n[parent]


def piece_ends(ab: np.ndarray, k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(R, 2, 2) parent edges' ends, piece numbers k of n -> x1, y1, x2, y2 (R,) of the pieces: the start
    a + k / n (b - a), the end a + (k + 1) / n (b - a), per coordinate (1-d columns: numpy is slow on a last
    axis of two)."""
    t0, t1 = k / n, (k + 1) / n  # k < n, so k + 1 fits k's integer type
    ax, ay = ab[:, 0, 0], ab[:, 0, 1]
    dx, dy = ab[:, 1, 0] - ax, ab[:, 1, 1] - ay
    return ax + t0 * dx, ay + t0 * dy, ax + t1 * dx, ay + t1 * dy


def edge_ends(vertices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The (R, 2, 2) parent edge ends of piece rows, read from the vertices they name."""
    return np.take(vertices, rows[:, START : END + 1], axis=0)
