"""Vectorised geometry for the fast scorer: ego boxes, oriented-box overlap (separating axes), point in
polygons through a uniform grid, polyline projection and distance. Exact (not rasterised): the grid only
narrows down which polygon edges a point must be tested against."""

from __future__ import annotations

import numpy as np
import shapely

from drivefine_core.metrics import constants as K

# Irrational-looking grid offset so cell centres do not fall on axis-aligned map edges.
_GRID_JITTER = 0.1234567


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


def boxes_overlap(c1, h1, l1, w1, c2, h2, l2, w2) -> np.ndarray:
    """Oriented boxes (centre, heading, half length, half width; broadcastable) intersect (touching counts)."""
    d = c2 - c1
    u1 = np.stack([np.cos(h1), np.sin(h1)], -1)
    v1 = np.stack([-np.sin(h1), np.cos(h1)], -1)
    u2 = np.stack([np.cos(h2), np.sin(h2)], -1)
    v2 = np.stack([-np.sin(h2), np.cos(h2)], -1)
    sep = np.zeros(np.broadcast_shapes(d.shape[:-1], np.shape(l2), np.shape(l1)), dtype=bool)
    for axis in (u1, v1, u2, v2):
        r1 = l1 * np.abs(np.sum(u1 * axis, -1)) + w1 * np.abs(np.sum(v1 * axis, -1))
        r2 = l2 * np.abs(np.sum(u2 * axis, -1)) + w2 * np.abs(np.sum(v2 * axis, -1))
        sep |= np.abs(np.sum(d * axis, -1)) > r1 + r2
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


def _orient(ax, ay, bx, by, cx, cy):
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


class PolygonIndex:
    """Which of P polygons contain each query point; exact crossing-parity from the cell centre."""

    def __init__(self, vertices: np.ndarray, offsets: np.ndarray, cell: float = 2.0):
        self.num_polygons = len(offsets) - 1
        self.cell = cell
        if self.num_polygons == 0:
            return
        lo = vertices.min(axis=0) - 1.0 - _GRID_JITTER
        hi = vertices.max(axis=0) + 1.0
        self.origin = lo
        self.nx, self.ny = (np.ceil((hi - lo) / cell).astype(int) + 1).tolist()
        gx = lo[0] + (np.arange(self.nx) + 0.5) * cell
        gy = lo[1] + (np.arange(self.ny) + 0.5) * cell
        inside = np.zeros((self.nx, self.ny, self.num_polygons), dtype=bool)
        starts, ends, owner = [], [], []
        for p in range(self.num_polygons):
            ring = vertices[offsets[p] : offsets[p + 1]]
            poly = shapely.Polygon(ring)
            pmin, pmax = ring.min(axis=0), ring.max(axis=0)
            ix = np.nonzero((gx >= pmin[0]) & (gx <= pmax[0]))[0]
            iy = np.nonzero((gy >= pmin[1]) & (gy <= pmax[1]))[0]
            if len(ix) and len(iy):
                xx, yy = np.meshgrid(gx[ix], gy[iy], indexing="ij")
                inside[np.ix_(ix, iy, [p])] = shapely.contains_xy(poly, xx, yy)[..., None]
            starts.append(ring)
            ends.append(np.roll(ring, -1, axis=0))
            owner.append(np.full(len(ring), p))
        self.inside = inside.reshape(self.nx * self.ny, self.num_polygons)
        a, b = np.concatenate(starts), np.concatenate(ends)
        self.edges = np.concatenate([a, b], axis=1)
        self.edge_owner = np.concatenate(owner)
        # Cells an edge may cross: every cell whose centre is within half a diagonal of the segment.
        cell_lists: list[list[int]] = [[] for _ in range(self.nx * self.ny)]
        half_diag = cell * np.sqrt(0.5) + 1e-9
        for e, (x1, y1, x2, y2) in enumerate(self.edges):
            i0, i1 = self._cell_range(min(x1, x2), max(x1, x2), self.nx, 0)
            j0, j1 = self._cell_range(min(y1, y2), max(y1, y2), self.ny, 1)
            ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1), indexing="ij")
            cx, cy = gx[ii.ravel()], gy[jj.ravel()]
            dist = _point_segment_distance(np.stack([cx, cy], -1), np.array([x1, y1]), np.array([x2, y2]))
            for flat in (ii.ravel() * self.ny + jj.ravel())[dist <= half_diag]:
                cell_lists[flat].append(e)
        width = max(1, max(len(c) for c in cell_lists))
        self.cell_edges = np.full((self.nx * self.ny, width), -1, dtype=np.int64)
        for i, c in enumerate(cell_lists):
            self.cell_edges[i, : len(c)] = c
        self.centers = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)

    def _cell_range(self, a: float, b: float, n: int, axis: int) -> tuple[int, int]:
        i0 = int(np.floor((a - self.origin[axis]) / self.cell)) - 1
        i1 = int(np.floor((b - self.origin[axis]) / self.cell)) + 1
        return max(i0, 0), min(i1, n - 1)

    def query(self, points: np.ndarray) -> np.ndarray:
        """(Q, 2) -> (Q, P) bool: point strictly inside polygon p."""
        q = len(points)
        if self.num_polygons == 0:
            return np.zeros((q, 0), dtype=bool)
        ij = np.floor((points - self.origin) / self.cell).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < self.nx) & (ij[:, 1] >= 0) & (ij[:, 1] < self.ny)
        flat = np.where(ok, ij[:, 0] * self.ny + ij[:, 1], 0)
        out = self.inside[flat] & ok[:, None]
        cand = self.cell_edges[flat]  # (Q, W)
        valid = (cand >= 0) & ok[:, None]
        e = self.edges[np.maximum(cand, 0)]  # (Q, W, 4)
        c = self.centers[flat][:, None, :]
        p = points[:, None, :]
        d1 = _orient(e[..., 0], e[..., 1], e[..., 2], e[..., 3], c[..., 0], c[..., 1])
        d2 = _orient(e[..., 0], e[..., 1], e[..., 2], e[..., 3], p[..., 0], p[..., 1])
        d3 = _orient(c[..., 0], c[..., 1], p[..., 0], p[..., 1], e[..., 0], e[..., 1])
        d4 = _orient(c[..., 0], c[..., 1], p[..., 0], p[..., 1], e[..., 2], e[..., 3])
        cross = valid & (d1 * d2 < 0) & (d3 * d4 < 0)
        rows, ks = np.nonzero(cross)
        if len(rows):
            counts = np.zeros(out.shape, dtype=np.int32)
            np.add.at(counts, (rows, self.edge_owner[cand[rows, ks]]), 1)
            out ^= (counts & 1).astype(bool)
        return out


def _point_segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of (..., 2) points to segments a-b (broadcastable (..., 2))."""
    ab = b - a
    denom = np.maximum(np.sum(ab * ab, -1), 1e-300)
    t = np.clip(np.sum((points - a) * ab, -1) / denom, 0.0, 1.0)
    proj = a + t[..., None] * ab
    return np.linalg.norm(points - proj, axis=-1)


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


class PolylineNearIndex:
    """Is a point within `radius` of a polyline? Grid of candidate segments per cell, exact distances."""

    def __init__(self, line: np.ndarray, radius: float, cell: float = 2.0):
        self.radius = radius
        self.cell = cell
        self.a, self.b = line[:-1], line[1:]
        self.origin = line.min(axis=0) - radius - cell - _GRID_JITTER
        hi = line.max(axis=0) + radius + cell
        self.nx, self.ny = (np.ceil((hi - self.origin) / cell).astype(int) + 1).tolist()
        gx = self.origin[0] + (np.arange(self.nx) + 0.5) * cell
        gy = self.origin[1] + (np.arange(self.ny) + 0.5) * cell
        reach = radius + cell * np.sqrt(0.5) + 1e-9
        lists: list[list[int]] = [[] for _ in range(self.nx * self.ny)]
        for s in range(len(self.a)):
            lo = np.minimum(self.a[s], self.b[s]) - reach
            hi_s = np.maximum(self.a[s], self.b[s]) + reach
            ix = np.nonzero((gx >= lo[0]) & (gx <= hi_s[0]))[0]
            iy = np.nonzero((gy >= lo[1]) & (gy <= hi_s[1]))[0]
            ii, jj = np.meshgrid(ix, iy, indexing="ij")
            pts = np.stack([gx[ii.ravel()], gy[jj.ravel()]], -1)
            near = _point_segment_distance(pts, self.a[s], self.b[s]) <= reach
            for flat in (ii.ravel() * self.ny + jj.ravel())[near]:
                lists[flat].append(s)
        width = max(1, max(len(x) for x in lists))
        self.cell_segments = np.full((self.nx * self.ny, width), -1, dtype=np.int64)
        for i, x in enumerate(lists):
            self.cell_segments[i, : len(x)] = x

    def within(self, points: np.ndarray) -> np.ndarray:
        """(Q, 2) -> (Q,) bool: distance to the polyline <= radius."""
        ij = np.floor((points - self.origin) / self.cell).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < self.nx) & (ij[:, 1] >= 0) & (ij[:, 1] < self.ny)
        flat = np.where(ok, ij[:, 0] * self.ny + ij[:, 1], 0)
        cand = self.cell_segments[flat]
        valid = (cand >= 0) & ok[:, None]
        idx = np.maximum(cand, 0)
        d = _point_segment_distance(points[:, None, :], self.a[idx], self.b[idx])
        return np.any(valid & (d <= self.radius), axis=1)
