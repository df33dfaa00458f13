"""Map look-ups of many scenes' points at once, with the scenes' own grids (geometry.PolygonIndex and
PolylineNearIndex): the same cells, the same candidate edges and the same arithmetic as a query per scene,
but only the table gathers (cell words, row pointers, rows, the rows' edge ends) run once per scene; the cell
arithmetic, piece cuts, crossing tests, parities and distances run once for the whole batch."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from drivefine_core.metrics.edge_pieces import OWNER, PART, PARTS, edge_ends, piece_ends
from drivefine_core.metrics.geometry import _crosses_xy, _point_segment_distance
from drivefine_core.metrics.grid_cells import cell_bounds, expand


def _cells(grids: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, M, 2) points, (S, 5) grid frames [origin x, origin y, cell, nx, ny] (geometry._Grid.frame) -> the
    cell (i, j) of each point in its scene's grid (S, M, 2), whether it is on the grid (S, M), and the flat
    cell (S, M) (0 where off the grid)."""
    origin = grids[:, None, :2]
    size = grids[:, 2, None, None]
    nx = grids[:, 3, None].astype(np.int64)
    ny = grids[:, 4, None].astype(np.int64)
    ij = np.floor((points - origin) / size).astype(np.int64)
    ok = (ij[..., 0] >= 0) & (ij[..., 0] < nx) & (ij[..., 1] >= 0) & (ij[..., 1] < ny)
    return ij, ok, np.where(ok, ij[..., 0] * ny + ij[..., 1], 0)


def _rows(start: np.ndarray, count: np.ndarray, s: int, m: int, table: Callable[[int], np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR rows of every point's cell (start / count over the flattened (S * M) points) -> (point index,
    table(scene)[positions] of those rows stacked, where each scene's rows begin (S + 1,)): one gather a scene."""
    rows, pos = expand(start, count)
    split = np.concatenate([[0], np.cumsum(count.reshape(s, m).sum(axis=1))])
    parts = [np.take(table(i), pos[split[i] : split[i + 1]], axis=0) for i in range(s) if split[i + 1] > split[i]]
    return rows, (np.concatenate(parts) if parts else table(0)[pos[:0]]), split


def _piece_ends(vertices: Sequence[np.ndarray], pieces: np.ndarray, split: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ends of the named pieces (edge_pieces) of each scene's rows: the edges' ends read per scene (one
    gather each), the cuts computed in one pass."""
    ends = [edge_ends(vertices[i], pieces[split[i] : split[i + 1]]) for i in range(len(vertices)) if split[i + 1] > split[i]]
    ab = np.concatenate(ends) if ends else np.zeros((0, 2, 2))
    return piece_ends(ab, pieces[:, PART], pieces[:, PARTS])


_CHUNK_POINTS = 16384  # scenes are taken in groups of about this many points: the work arrays stay in cache


def _chunks(s: int, m: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_POINTS // max(m, 1))
    return [(a, min(a + step, s)) for a in range(0, s, step)]


def polygon_pairs(indexes: Sequence, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, M, 2) points, one PolygonIndex per scene -> (flat point index, polygon of its scene) pairs with the
    point strictly inside: PolygonIndex.query_pairs of every scene, in a few passes."""
    s, m = points.shape[:2]
    parts = _chunks(s, m)
    if len(parts) > 1:
        got = [polygon_pairs(indexes[a:b], points[a:b]) for a, b in parts]
        return (np.concatenate([q + a * m for (a, _), (q, _) in zip(parts, got)]),
                np.concatenate([p for _, p in got]))
    live = [i for i, x in enumerate(indexes) if x.num_polygons]
    width = max((x.num_polygons for x in indexes), default=0)
    if not live or width == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(live) < s:  # scenes without polygons answer nothing
        q, p = polygon_pairs([indexes[i] for i in live], points[live])
        return np.asarray(live)[q // m] * m + q % m, p
    frames = np.stack([x.frame for x in indexes])  # [polygons, bbox lo, bbox hi, grid frame]
    ij, ok, cell = _cells(frames[:, 5:], points)
    flat = points.reshape(-1, 2)
    start, count = cell_bounds([x.cells for x in indexes], cell, ok)
    rows, polys, _ = _rows(start[:, 0], count[:, 0], s, m, lambda i: indexes[i].centre_poly)
    keys = rows * width + polys  # sorted and unique: points in order, each cell's polygons in order
    rows, edges, split = _rows(start[:, 1], count[:, 1], s, m, lambda i: indexes[i].edges)
    if len(rows):
        x1, y1, x2, y2 = _piece_ends([x.vertices for x in indexes], edges, split)
        origin, size = frames[:, 5:7], frames[:, 7]
        sc = rows // m
        centre = origin[sc] + (ij.reshape(-1, 2)[rows] + 0.5) * size[sc, None]  # as _Grid.centers
        cross = _crosses_xy(centre[:, 0], centre[:, 1], flat[rows, 0], flat[rows, 1], x1, y1, x2, y2)
        crossed, times = np.unique(rows[cross] * width + edges[cross, OWNER].astype(np.int64), return_counts=True)
        odd = crossed[times % 2 == 1]
        if len(odd):  # centre inside XOR an odd number of crossings
            at = np.minimum(np.searchsorted(keys, odd), max(len(keys) - 1, 0))
            found = keys[at] == odd if len(keys) else np.zeros(len(odd), dtype=bool)
            keep = np.ones(len(keys), dtype=bool)
            keep[at[found]] = False
            keys = np.concatenate([keys[keep], odd[~found]])
    lo, hi = frames[:, None, 1:3], frames[:, None, 3:5]
    off = ~ok & np.all((points >= lo) & (points <= hi), axis=-1)
    for i in np.flatnonzero(off.any(axis=1)):  # off the grid, inside the bounds: every edge (rare)
        at = np.flatnonzero(off[i])
        r, c = np.nonzero(indexes[i]._brute(points[i, at]))
        keys = np.concatenate([keys, (i * m + at[r]) * width + c])
    return keys // width, keys % width


def near_polyline(indexes: Sequence, points: np.ndarray) -> np.ndarray:
    """(S, M, 2) points, one PolylineNearIndex per scene -> (S, M) bool: within the index's radius."""
    s, m = points.shape[:2]
    parts = _chunks(s, m)
    if len(parts) > 1:
        return np.concatenate([near_polyline(indexes[a:b], points[a:b]) for a, b in parts])
    _, ok, cell = _cells(np.stack([x.frame for x in indexes]), points)
    start, count = cell_bounds([x.cells for x in indexes], cell, ok)
    rows, pieces, split = _rows(start[:, 0], count[:, 0], s, m, lambda i: indexes[i].pieces)
    x1, y1, x2, y2 = _piece_ends([x.line for x in indexes], pieces, split)
    radius = np.array([x.radius for x in indexes])
    near = _point_segment_distance(points.reshape(-1, 2)[rows], np.stack([x1, y1], -1), np.stack([x2, y2], -1)) <= radius[rows // m]
    out = np.zeros(s * m, dtype=bool)
    out[rows[near]] = True
    return out.reshape(s, m)
