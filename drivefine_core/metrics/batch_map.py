"""Map look-ups of many scenes' points at once, with the scenes' own grids (map_index.PolygonIndex and
PolylineNearIndex): each scene's points go through one compiled kernel (map_kernels) that reads the scene's
stored tables as they are and answers what the index's own query answers."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from drivefine_core.metrics.map_kernels import kinds_containing, near_line, polygons_containing


def polygon_pairs(indexes: Sequence, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, M, 2) points, one PolygonIndex per scene -> (flat point index, polygon of its scene) pairs with the
    point strictly inside: PolygonIndex.query_pairs of every scene."""
    s, m = points.shape[:2]
    points = np.ascontiguousarray(points, dtype=np.float64)
    qs, ps = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for i, x in enumerate(indexes):
        if not x.num_polygons:  # scenes without polygons answer nothing
            continue
        assert x.cells is not None
        q, p, off = polygons_containing(x.frame, x.cells.words, x.cells.ptr, x.centre_poly, x.edges, x.vertices,
                                        points[i])
        qs.append(q + i * m)
        ps.append(p)
        if off.any():  # off the grid, inside the bounds: every edge (rare)
            at = np.flatnonzero(off)
            r, c = np.nonzero(x._brute(points[i, at]))
            qs.append(i * m + at[r])
            ps.append(c.astype(np.int64))
    return np.concatenate(qs), np.concatenate(ps)


def inside_polygons(indexes: Sequence, points: np.ndarray) -> np.ndarray:
    """(S, M, 2) points, one PolygonIndex per scene -> (S, M) bool: strictly inside some polygon of the
    scene's index (polygon_pairs reduced per point, without listing the pairs; the index's union-interior cells
    answer without an edge test: PolygonIndex)."""
    one_kind = [np.zeros(x.num_polygons, dtype=np.uint8) for x in indexes]
    return polygon_kinds(indexes, one_kind, points, union_interior=True) != 0


def polygon_kinds(indexes: Sequence, kinds: Sequence[np.ndarray], points: np.ndarray,
                  union_interior: bool = False) -> np.ndarray:
    """(S, M, 2) points, one PolygonIndex per scene and its polygons' kinds (small ints < 8) -> (S, M) uint8:
    bit k set when the point is strictly inside a polygon of kind k (polygon_pairs reduced per point and kind).
    union_interior: the polygons are of one kind, so the indexes' union-interior cells may answer."""
    s, m = points.shape[:2]
    points = np.ascontiguousarray(points, dtype=np.float64)
    out = np.zeros((s, m), dtype=np.uint8)
    none = np.zeros(0, dtype=bool)
    for i, x in enumerate(indexes):
        if not x.num_polygons:
            continue
        assert x.cells is not None
        kind = np.ascontiguousarray(kinds[i], dtype=np.uint8)
        out[i], off = kinds_containing(x.frame, x.cells.words, x.cells.ptr, x.centre_poly, x.edges, x.vertices, kind,
                                       x.interior if union_interior else none, points[i])
        if off.any():  # off the grid, inside the bounds: every edge (rare)
            at = np.flatnonzero(off)
            inside = x._brute(points[i, at])
            for k in np.unique(kind):
                out[i, at[inside[:, kind == k].any(axis=1)]] |= np.uint8(1 << int(k))
    return out


def near_polyline(indexes: Sequence, points: np.ndarray) -> np.ndarray:
    """(S, M, 2) points, one PolylineNearIndex per scene -> (S, M) bool: within the index's radius."""
    points = np.ascontiguousarray(points, dtype=np.float64)
    return np.stack([near_line(x.frame, x.cells.words, x.cells.ptr, x.pieces, x.line, float(x.radius), points[i])
                     for i, x in enumerate(indexes)]).reshape(points.shape[:2])
