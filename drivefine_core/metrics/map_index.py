"""Grid indexes of a scene's map for the fast scorer: which polygons hold a point (PolygonIndex) and whether a
point lies near a polyline (PolylineNearIndex). Exact (not rasterised): the grid only narrows down which
polygon edges or line pieces a point must be tested against."""

from __future__ import annotations

from typing import Callable

import numpy as np
import shapely

from drivefine_core.metrics.edge_pieces import OWNER, PART, PARTS, cut, edge_ends, piece_ends
from drivefine_core.metrics.geometry import _point_segment_distance
from drivefine_core.metrics.grid_cells import CellTable, expand, narrow

# Irrational-looking grid offset so cell centres do not fall on axis-aligned map edges.
_GRID_JITTER = 0.1234567
# A cell counts as inside the polygons' union only when it is, widened by this much on every side: a point in
# it is then far beyond rounding from the union's boundary.
_INTERIOR_MARGIN = 1e-6


def _csr(cells: np.ndarray, values: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(cells, kind="stable")
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(cells, minlength=n_cells))
    return indptr, values[order]


class _Grid:
    def __init__(self, lo: np.ndarray, hi: np.ndarray, cell: float):
        self.cell = cell
        self.origin = lo - cell - _GRID_JITTER
        self.nx, self.ny = (np.ceil((hi + cell - self.origin) / cell).astype(int) + 1).tolist()
        self.n = self.nx * self.ny

    def frame(self) -> list[float]:
        return [*self.origin.tolist(), self.cell, self.nx, self.ny]

    @staticmethod
    def of_frame(frame: np.ndarray) -> "_Grid":
        """The grid `frame()` describes (stored numbers, exact in float64), without recomputing it."""
        g = _Grid.__new__(_Grid)
        g.origin = frame[:2]
        g.cell, g.nx, g.ny = float(frame[2]), int(frame[3]), int(frame[4])
        g.n = g.nx * g.ny
        return g

    def ij(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ij = np.floor((points - self.origin) / self.cell).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < self.nx) & (ij[:, 1] >= 0) & (ij[:, 1] < self.ny)
        return np.where(ok, ij[:, 0] * self.ny + ij[:, 1], 0), ok

    def centers(self, flat: np.ndarray) -> np.ndarray:
        return self.origin + (np.stack([flat // self.ny, flat % self.ny], -1) + 0.5) * self.cell

    def box_cells(self, lo: np.ndarray, hi: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
        """Cells of the boxes [lo, hi] (each at most `span` cells wide) -> (cell, box index), clipped to the grid."""
        i0 = np.floor((lo - self.origin) / self.cell).astype(np.int64)
        i1 = np.floor((hi - self.origin) / self.cell).astype(np.int64)
        di, dj = np.meshgrid(np.arange(span), np.arange(span), indexing="ij")
        ci = i0[:, None, 0] + di.ravel()[None]
        cj = i0[:, None, 1] + dj.ravel()[None]
        keep = (ci <= i1[:, None, 0]) & (cj <= i1[:, None, 1]) & (ci >= 0) & (cj >= 0) & (ci < self.nx) & (cj < self.ny)
        box = np.broadcast_to(np.arange(len(lo))[:, None], ci.shape)
        return (ci * self.ny + cj)[keep], box[keep]


Rings = Callable[[], tuple[np.ndarray, np.ndarray]]


def _interior(polys: np.ndarray, g: _Grid, centre_ptr: np.ndarray, edge_ptr: np.ndarray) -> np.ndarray:
    """(occupied cells,) bool in slot order (grid_cells.CellTable): the cell has edge pieces and, widened by
    _INTERIOR_MARGIN, lies in the interior of the polygons' union. Cells without edges need no flag (their
    points are inside exactly the polygons holding the centre). None is flagged where a polygon is invalid (its
    region under the crossing rule need not be shapely's)."""
    n_edges = np.diff(edge_ptr)
    occupied = np.flatnonzero((np.diff(centre_ptr) > 0) | (n_edges > 0))
    out = np.zeros(len(occupied), dtype=bool)
    test = np.flatnonzero(n_edges[occupied] > 0)
    if len(test) and shapely.is_valid(polys).all():
        union = shapely.union_all(polys)
        shapely.prepare(union)
        lo = g.origin + np.stack([occupied[test] // g.ny, occupied[test] % g.ny], -1) * g.cell - _INTERIOR_MARGIN
        hi = lo + g.cell + 2 * _INTERIOR_MARGIN
        out[test] = shapely.contains_properly(union, shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]))
    return out


class PolygonIndex:
    """Which of P polygons contain each query point (boundary excluded).

    A uniform grid stores, per cell, the polygons containing the cell centre and the polygon edge pieces
    crossing the cell (CSR tables over the occupied cells, grid_cells.CellTable). A point is inside a polygon
    iff the centre is inside XOR the segment centre -> point crosses that polygon's boundary an odd number of
    times: exact, and only the few edges near the point are touched. Points off the grid are tested against
    every edge. The edge table names its pieces (edge_pieces): rows [start vertex, end vertex, k, n, owner]
    into `vertices`, an array several indexes of one scene may share.

    With `union_interior`, `interior` marks the occupied cells with edges that lie inside the union of the
    polygons (one flag per slot): a point there is inside some polygon without testing an edge. That answers
    "inside any" (DAC), not "inside which". The per-polygon test gives the same answer there (a point on an edge
    two polygons share goes to one of them) except in ties of the crossing rule (the segment from the cell
    centre passing exactly through a vertex), where the union's answer is the geometric one."""

    def __init__(self, vertices: np.ndarray, offsets: np.ndarray, cell: float = 1.0,
                 extent: tuple[np.ndarray, np.ndarray] | None = None, shared: np.ndarray | None = None,
                 vertex_ids: np.ndarray | None = None, union_interior: bool = False):
        """Build from polygons (vertices, offsets). `shared`, `vertex_ids`: vertices == shared[vertex_ids];
        the edge rows then name rows of `shared`."""
        if shared is None or vertex_ids is None:
            shared, vertex_ids = vertices, np.arange(len(vertices))
        num_polygons = len(offsets) - 1
        if num_polygons == 0:
            self._load(np.zeros(1), None, np.zeros(0, dtype=np.uint8), np.zeros((0, 5), dtype=np.uint8), shared,
                       lambda: (vertices, offsets), np.zeros(0, dtype=bool))
            return
        counts = np.diff(offsets)
        owner = np.repeat(np.arange(num_polygons), counts)
        nxt = np.arange(len(vertices)) + 1
        nxt[offsets[1:] - 1] = offsets[:-1]  # close every ring
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        bbox = [*lo.tolist(), *hi.tolist()]
        if extent is not None:
            lo, hi = np.maximum(lo, extent[0]), np.minimum(hi, extent[1])
        g = _Grid(lo, np.maximum(hi, lo), cell)
        sa, sb, parent, k, n = cut(vertices, vertices[nxt], cell)
        cells, piece = g.box_cells(np.minimum(sa, sb), np.maximum(sa, sb), 2)
        edge_ptr, edge_piece = _csr(cells, piece, g.n)
        rows = np.stack([vertex_ids[parent], vertex_ids[nxt[parent]], k, n, owner[parent]], axis=1)
        # Cell centres inside each polygon: every (cell, polygon) pair of the polygons' bounding boxes,
        # tested in one vectorised shapely call on prepared polygons.
        rings = [vertices[offsets[p] : offsets[p + 1]] for p in range(num_polygons)]
        polys = np.array([shapely.Polygon(r) for r in rings], dtype=object)
        shapely.prepare(polys)
        mins = np.stack([r.min(axis=0) for r in rings])
        maxs = np.stack([r.max(axis=0) for r in rings])
        top = np.array([g.nx - 1, g.ny - 1])
        i0 = np.clip(np.floor((mins - g.origin) / g.cell).astype(np.int64), 0, top)
        i1 = np.clip(np.floor((maxs - g.origin) / g.cell).astype(np.int64), 0, top)
        size = i1 - i0 + 1
        n_pairs = size[:, 0] * size[:, 1]
        poly = np.repeat(np.arange(num_polygons), n_pairs)
        j = np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
        ci = i0[poly, 0] + j // size[poly, 1]
        cj = i0[poly, 1] + j % size[poly, 1]
        cells = ci * g.ny + cj
        centre = g.centers(cells)
        inside = shapely.contains_xy(polys[poly], centre[:, 0], centre[:, 1])
        centre_ptr, centre_poly = _csr(cells[inside], poly[inside], g.n)
        frame = np.array([num_polygons, *bbox, *g.frame()], dtype=np.float64)
        interior = _interior(polys, g, centre_ptr, edge_ptr) if union_interior else np.zeros(0, dtype=bool)
        self._load(frame, CellTable.of([centre_ptr, edge_ptr]), narrow(centre_poly), narrow(rows[edge_piece]), shared,
                   lambda: (vertices, offsets), interior)

    @classmethod
    def of_tables(cls, tables: dict[str, np.ndarray], prefix: str, vertices: np.ndarray, rings: Rings) -> "PolygonIndex":
        """The index whose `tables()` are stored under prefix + name, over the same `vertices` (the shared
        array); `rings()` -> this index's polygons (vertices, offsets), needed only for points off the grid."""
        index = cls.__new__(cls)
        frame = tables[prefix + "frame"]
        cells = CellTable(tables[prefix + "words"], tables[prefix + "ptr"]) if len(frame) > 1 else None
        index._load(frame, cells, tables[prefix + "centre_poly"], tables[prefix + "edges"], vertices, rings,
                    tables[prefix + "interior"])
        return index

    def _load(self, frame: np.ndarray, cells: CellTable | None, centre_poly: np.ndarray, edges: np.ndarray,
              vertices: np.ndarray, rings: Rings, interior: np.ndarray) -> None:
        self.frame, self.cells, self.centre_poly, self.edges, self.vertices = frame, cells, centre_poly, edges, vertices
        self.interior = interior
        self.num_polygons = int(frame[0])
        self._rings, self._segments = rings, None
        if self.num_polygons:
            self.bbox = (frame[1:3], frame[3:5])
            self.grid = _Grid.of_frame(frame[5:])

    def tables(self) -> dict[str, np.ndarray]:
        """What the build computed (the rest follows from the vertices): to keep, and pass back to of_tables."""
        cells = self.cells.arrays() if self.cells is not None else {}
        return {"frame": self.frame, **cells, "centre_poly": self.centre_poly, "edges": self.edges,
                "interior": self.interior}

    def query_pairs(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Q, 2) -> (point, polygon) index pairs with the point strictly inside (each pair once, in no set order)."""
        p = self.num_polygons
        if p == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        g = self.grid
        ij = np.floor((points - g.origin) / g.cell).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < g.nx) & (ij[:, 1] >= 0) & (ij[:, 1] < g.ny)
        on = np.flatnonzero(ok)
        ij = ij[on]
        assert self.cells is not None
        start, count = self.cells.lookup(ij[:, 0] * g.ny + ij[:, 1])
        rows, pos = expand(start[:, 0], count[:, 0])
        keys = [on[rows] * p + self.centre_poly[pos]]
        rows, pos = expand(start[:, 1], count[:, 1])
        if len(rows):
            centre = g.origin + (ij + 0.5) * g.cell  # the same numbers as _Grid.centers of these cells
            at = on[rows]
            e = self.edges[pos]
            cross = _crosses_xy(centre[rows, 0], centre[rows, 1], points[at, 0], points[at, 1],
                                *piece_ends(edge_ends(self.vertices, e), e[:, PART], e[:, PARTS]))
            crossed, count = np.unique(at[cross] * p + e[cross, OWNER].astype(np.int64), return_counts=True)
            odd = crossed[count % 2 == 1]
            if len(odd):  # centre inside XOR an odd number of crossings. keys[0] is sorted and unique (points
                # in order, each cell's polygons in order), so the toggled pairs are found by binary search.
                k0 = keys[0]
                at_k0 = np.minimum(np.searchsorted(k0, odd), max(len(k0) - 1, 0))
                found = k0[at_k0] == odd if len(k0) else np.zeros(len(odd), dtype=bool)
                keep = np.ones(len(k0), dtype=bool)
                keep[at_k0[found]] = False
                keys = [k0[keep], odd[~found]]
        lo, hi = self.bbox
        off = np.nonzero(~ok & np.all((points >= lo) & (points <= hi), axis=1))[0]
        if len(off):  # off the grid but inside the polygons' bounds: crossing number against every edge
            r, c = np.nonzero(self._brute(points[off]))
            keys.append(off[r] * p + c)
        inside = keys[0] if len(keys) == 1 else np.concatenate(keys)
        return inside // p, inside % p

    def query(self, points: np.ndarray) -> np.ndarray:
        """(Q, 2) -> (Q, P) bool: point strictly inside polygon p."""
        out = np.zeros((len(points), self.num_polygons), dtype=bool)
        rows, polys = self.query_pairs(points)
        out[rows, polys] = True
        return out

    def _brute(self, pts: np.ndarray) -> np.ndarray:
        if self._segments is None:  # every edge of every polygon, built the first time a point is off the grid
            vertices, offsets = self._rings()
            nxt = np.arange(len(vertices)) + 1
            nxt[offsets[1:] - 1] = offsets[:-1]
            self._segments = (vertices, vertices[nxt], np.repeat(np.arange(self.num_polygons), np.diff(offsets)))
        seg_a, seg_b, owner = self._segments
        a, b = seg_a[None], seg_b[None]
        x, y = pts[:, None, 0], pts[:, None, 1]
        straddle = (a[..., 1] > y) != (b[..., 1] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcross = a[..., 0] + (y - a[..., 1]) * (b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1])
        hit = straddle & (x < xcross)
        out = np.zeros((len(pts), self.num_polygons), dtype=np.int64)
        for poly in range(self.num_polygons):
            out[:, poly] = hit[:, owner == poly].sum(axis=1)
        return (out & 1).astype(bool)


def _orient(ax, ay, bx, by, cx, cy):
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


def _crosses_xy(cx, cy, px, py, ex1, ey1, ex2, ey2) -> np.ndarray:
    """_crosses on coordinate columns (contiguous gathers instead of strided (M, 4) slices)."""
    d1 = _orient(ex1, ey1, ex2, ey2, cx, cy)
    d2 = _orient(ex1, ey1, ex2, ey2, px, py)
    d3 = _orient(cx, cy, px, py, ex1, ey1)
    d4 = _orient(cx, cy, px, py, ex2, ey2)
    return (d1 * d2 < 0) & (d3 * d4 < 0)


class PolylineNearIndex:
    """Is a point within `radius` of a polyline? Sparse grid of nearby segment pieces (rows [start vertex,
    end vertex, k, n] of the line, edge_pieces), exact distances."""

    def __init__(self, line: np.ndarray, radius: float, cell: float = 1.0):
        sa, sb, parent, k, n = cut(line[:-1], line[1:], cell)
        g = _Grid(line.min(axis=0) - radius, line.max(axis=0) + radius, cell)
        span = int(np.ceil(2 * radius / cell)) + 2
        cells, piece = g.box_cells(np.minimum(sa, sb) - radius, np.maximum(sa, sb) + radius, span)
        ptr, pieces = _csr(cells, piece, g.n)
        rows = np.stack([parent, parent + 1, k, n], axis=1)
        self._load(line, radius, np.array(g.frame(), dtype=np.float64), CellTable.of([ptr]), narrow(rows[pieces]))

    @classmethod
    def of_tables(cls, line: np.ndarray, radius: float, tables: dict[str, np.ndarray], prefix: str) -> "PolylineNearIndex":
        index = cls.__new__(cls)
        cells = CellTable(tables[prefix + "words"], tables[prefix + "ptr"])
        index._load(line, radius, tables[prefix + "frame"], cells, tables[prefix + "pieces"])
        return index

    def _load(self, line: np.ndarray, radius: float, frame: np.ndarray, cells: CellTable, pieces: np.ndarray) -> None:
        self.line, self.radius, self.frame, self.cells, self.pieces = line, radius, frame, cells, pieces
        self.grid = _Grid.of_frame(frame)

    def tables(self) -> dict[str, np.ndarray]:
        return {"frame": self.frame, **self.cells.arrays(), "pieces": self.pieces}

    def within(self, points: np.ndarray) -> np.ndarray:
        """(Q, 2) -> (Q,) bool: distance to the polyline <= radius."""
        flat, ok = self.grid.ij(points)
        on = np.nonzero(ok)[0]
        start, count = self.cells.lookup(flat[on])
        rows, pos = expand(start[:, 0], count[:, 0])
        s = self.pieces[pos]
        x1, y1, x2, y2 = piece_ends(edge_ends(self.line, s), s[:, PART], s[:, PARTS])
        near = _point_segment_distance(points[on][rows], np.stack([x1, y1], -1), np.stack([x2, y2], -1)) <= self.radius
        out = np.zeros(len(points), dtype=bool)
        out[on[rows[near]]] = True
        return out
