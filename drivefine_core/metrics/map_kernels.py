"""The map look-ups of batch_map compiled with numba, one scene's points at a time.

As array code over a whole batch, every (point, cell row) pair had to be gathered into arrays first, which at RL
batch sizes cost more than the tests themselves. Here each point walks its own cell's rows of the stored tables,
with the same cell arithmetic, the same piece cuts (edge_pieces.piece_ends) and the same crossing / distance
formulas as the per-scene queries (map_index's PolygonIndex.query_pairs and PolylineNearIndex.within,
geometry.project_to_polyline), which stay the definitions: the tests compare the answers exactly. Points off the grid but
inside a polygon index's bounds are left to the caller (`off`), as they are rare.
"""

from __future__ import annotations

import numba
import numpy as np

_LOW32 = (1 << 32) - 1


@numba.njit(cache=True, inline="always")
def _popcount32(x: int) -> int:
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) & 0xFFFFFFFF) >> 24


@numba.njit(cache=True, inline="always")
def _slot(words: np.ndarray, cell: int) -> int:
    """The cell's slot in the CSR rows (grid_cells.CellTable), or -1 for an empty cell."""
    word = np.int64(words[cell >> 5])  # rank < 2^31: the uint64 word fits an int64
    bit = cell & 31
    bits = word & _LOW32
    if (bits >> bit) & 1 == 0:
        return -1
    return (word >> 32) + _popcount32(bits & ((1 << bit) - 1))


@numba.njit(cache=True, inline="always")
def _cell_of(frame: np.ndarray, px: float, py: float) -> tuple[int, int, int]:
    """(i, j, flat cell) of a point in the grid frame [origin x, origin y, cell, nx, ny]; flat -1 off the grid."""
    i = int(np.floor((px - frame[0]) / frame[2]))
    j = int(np.floor((py - frame[1]) / frame[2]))
    nx, ny = int(frame[3]), int(frame[4])
    if i < 0 or i >= nx or j < 0 or j >= ny:
        return i, j, -1
    return i, j, i * ny + j


@numba.njit(cache=True, inline="always")
def _piece(vertices: np.ndarray, rows: np.ndarray, r: int) -> tuple[float, float, float, float]:
    """edge_pieces.piece_ends of piece row r [start vertex, end vertex, k, n, ...]."""
    a, b = rows[r, 0], rows[r, 1]
    ax, ay = vertices[a, 0], vertices[a, 1]
    dx, dy = vertices[b, 0] - ax, vertices[b, 1] - ay
    k, n = float(rows[r, 2]), float(rows[r, 3])
    t0, t1 = k / n, (k + 1.0) / n
    return ax + t0 * dx, ay + t0 * dy, ax + t1 * dx, ay + t1 * dy


@numba.njit(cache=True, inline="always")
def _orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float:
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


_CENTRE, _ODD, _LISTED = 1, 2, 4  # bits of a polygon's state while one point is tested


@numba.njit(cache=True, inline="always")
def _scan(grid: np.ndarray, slot: int, i: int, j: int, px: float, py: float, ptr: np.ndarray, centre_poly: np.ndarray,
          edges: np.ndarray, vertices: np.ndarray, state: np.ndarray, touched: np.ndarray) -> int:
    """One point's cell rows: marks the polygons containing the cell centre and toggles, per polygon, the
    parity of the edges crossed by the segment centre -> point; lists each marked polygon once in `touched`
    and returns how many. The point is inside polygon p iff state[p] has exactly one of _CENTRE / _ODD."""
    n_touched = 0
    for r in range(int(ptr[slot, 0]), int(ptr[slot + 1, 0])):
        p = int(centre_poly[r])
        if not state[p] & _LISTED:
            touched[n_touched] = p
            n_touched += 1
        state[p] |= _CENTRE | _LISTED
    cx = grid[0] + (i + 0.5) * grid[2]
    cy = grid[1] + (j + 0.5) * grid[2]
    for r in range(int(ptr[slot, 1]), int(ptr[slot + 1, 1])):
        x1, y1, x2, y2 = _piece(vertices, edges, r)
        d1 = _orient(x1, y1, x2, y2, cx, cy)
        d2 = _orient(x1, y1, x2, y2, px, py)
        d3 = _orient(cx, cy, px, py, x1, y1)
        d4 = _orient(cx, cy, px, py, x2, y2)
        if d1 * d2 < 0 and d3 * d4 < 0:
            p = int(edges[r, 4])
            if not state[p] & _LISTED:
                touched[n_touched] = p
                n_touched += 1
            state[p] = (state[p] ^ _ODD) | _LISTED
    return n_touched


@numba.njit(cache=True, inline="always")
def _locate(frame: np.ndarray, words: np.ndarray, px: float, py: float) -> tuple[int, int, int]:
    """(i, j, slot) of a point's cell; slot -1 in an empty cell or off the grid, -2 off the grid but inside the
    polygons' bounds (frame [polygons, bbox lo, bbox hi, grid frame]: every edge needed)."""
    i, j, cell = _cell_of(frame[5:], px, py)
    if cell < 0:
        return i, j, -2 if frame[1] <= px <= frame[3] and frame[2] <= py <= frame[4] else -1
    return i, j, _slot(words, cell)


@numba.njit(cache=True, inline="always")
def _inside(state: int) -> bool:
    return (state & _CENTRE != 0) != (state & _ODD != 0)  # centre inside XOR an odd number of crossings


@numba.njit(cache=True)
def polygons_containing(frame: np.ndarray, words: np.ndarray, ptr: np.ndarray, centre_poly: np.ndarray,
                        edges: np.ndarray, vertices: np.ndarray, points: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """map_index.PolygonIndex.query_pairs of one scene: (M, 2) points -> (point, polygon) pairs with the point
    strictly inside (points in order, each point's polygons in order), and the points off the grid but inside
    the polygons' bounds, whose answer needs every edge (the caller's brute force)."""
    m = points.shape[0]
    state = np.zeros(int(frame[0]), dtype=np.int8)
    touched = np.empty(int(frame[0]), dtype=np.int64)
    out_pt = np.empty(max(16, 2 * m), dtype=np.int64)
    out_poly = np.empty_like(out_pt)
    n_out = 0
    off = np.zeros(m, dtype=np.bool_)
    for q in range(m):
        px, py = points[q, 0], points[q, 1]
        i, j, slot = _locate(frame, words, px, py)
        if slot < 0:
            off[q] = slot == -2
            continue
        if ptr[slot, 1] == ptr[slot + 1, 1]:  # no edge in the cell: exactly the polygons holding its centre
            n_touched = 0
            for r in range(int(ptr[slot, 0]), int(ptr[slot + 1, 0])):
                touched[n_touched] = centre_poly[r]
                state[centre_poly[r]] = _CENTRE
                n_touched += 1
        else:
            n_touched = _scan(frame[5:], slot, i, j, px, py, ptr, centre_poly, edges, vertices, state, touched)
        for t in range(1, n_touched):  # insertion sort: a point touches a handful of polygons
            p, u = touched[t], t
            while u > 0 and touched[u - 1] > p:
                touched[u] = touched[u - 1]
                u -= 1
            touched[u] = p
        while n_out + n_touched > len(out_pt):
            out_pt = np.concatenate((out_pt, np.empty_like(out_pt)))
            out_poly = np.concatenate((out_poly, np.empty_like(out_poly)))
        for t in range(n_touched):
            p = touched[t]
            if _inside(state[p]):
                out_pt[n_out] = q
                out_poly[n_out] = p
                n_out += 1
            state[p] = 0
    return out_pt[:n_out], out_poly[:n_out], off


@numba.njit(cache=True)
def kinds_containing(frame: np.ndarray, words: np.ndarray, ptr: np.ndarray, centre_poly: np.ndarray,
                     edges: np.ndarray, vertices: np.ndarray, kind: np.ndarray, interior: np.ndarray,
                     points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M,) uint8 masks, bit k set when the point is strictly inside some polygon p with kind[p] == k
    (polygons_containing's pairs reduced per point and kind, kinds < 8), and the points off the grid but
    inside the bounds (the caller's brute force). `interior`: PolygonIndex.interior (one flag per slot) or
    empty; only for polygons of one kind ("inside any"): a flagged cell's points are inside."""
    m = points.shape[0]
    state = np.zeros(int(frame[0]), dtype=np.int8)
    touched = np.empty(int(frame[0]), dtype=np.int64)
    out = np.zeros(m, dtype=np.uint8)
    off = np.zeros(m, dtype=np.bool_)
    for q in range(m):
        px, py = points[q, 0], points[q, 1]
        i, j, slot = _locate(frame, words, px, py)
        if slot < 0:
            off[q] = slot == -2
            continue
        mask = 0
        if ptr[slot, 1] == ptr[slot + 1, 1]:  # no edge in the cell (most cells): the polygons holding its centre
            for r in range(int(ptr[slot, 0]), int(ptr[slot + 1, 0])):
                mask |= 1 << kind[centre_poly[r]]
        elif slot < len(interior) and interior[slot]:  # edges shared inside the union, none near its boundary
            mask = 1 << kind[0]
        else:
            n_touched = _scan(frame[5:], slot, i, j, px, py, ptr, centre_poly, edges, vertices, state, touched)
            for t in range(n_touched):
                p = touched[t]
                if _inside(state[p]):
                    mask |= 1 << kind[p]
                state[p] = 0
        out[q] = mask
    return out, off


@numba.njit(cache=True)
def near_line(frame: np.ndarray, words: np.ndarray, ptr: np.ndarray, pieces: np.ndarray, line: np.ndarray,
              radius: float, points: np.ndarray) -> np.ndarray:
    """map_index.PolylineNearIndex.within of one scene: (M, 2) points -> (M,) within `radius` of a piece in
    the point's cell (geometry._point_segment_distance, the same operations)."""
    m = points.shape[0]
    out = np.zeros(m, dtype=np.bool_)
    for q in range(m):
        px, py = points[q, 0], points[q, 1]
        _, _, cell = _cell_of(frame, px, py)
        if cell < 0:
            continue
        slot = _slot(words, cell)
        if slot < 0:
            continue
        for r in range(int(ptr[slot, 0]), int(ptr[slot + 1, 0])):
            ax, ay, bx, by = _piece(line, pieces, r)
            abx, aby = bx - ax, by - ay
            relx, rely = px - ax, py - ay
            denom = max(abx * abx + aby * aby, 1e-300)
            t = min(max((relx * abx + rely * aby) / denom, 0.0), 1.0)
            offx, offy = px - (ax + t * abx), py - (ay + t * aby)
            if np.sqrt(offx * offx + offy * offy) <= radius:
                out[q] = True
                break
    return out


@numba.njit(cache=True)
def arc_lengths(a: np.ndarray, ab: np.ndarray, seg_len: np.ndarray, cum: np.ndarray, centre: np.ndarray,
                radius: np.ndarray, block: int, points: np.ndarray) -> np.ndarray:
    """geometry.project_to_polyline of one scene's (M, 2) points on its centreline (scene_index.RouteBlocks:
    segments a + [0, 1] ab in runs of `block` segments with bounding circles): the arc length of the first
    nearest segment's nearest point. A run is measured only when its circle comes within the nearest circle's
    far side (as batch_metrics did it), so the first nearest segment is the same."""
    m, n_blocks, n_segs = points.shape[0], len(radius), len(seg_len)
    out = np.empty(m)
    dc = np.empty(n_blocks)
    for q in range(m):
        px, py = points[q, 0], points[q, 1]
        upper = np.inf
        for b in range(n_blocks):
            dx, dy = px - centre[b, 0], py - centre[b, 1]
            dc[b] = np.sqrt(dx * dx + dy * dy)
            upper = min(upper, dc[b] + radius[b])
        bound = upper * (1 + 1e-9) + 1e-9
        best, best_k, best_t = np.inf, -1, 0.0
        for b in range(n_blocks):
            if not dc[b] - radius[b] <= bound:
                continue
            for k in range(b * block, min((b + 1) * block, n_segs)):
                relx, rely = px - a[k, 0], py - a[k, 1]
                denom = max(seg_len[k] * seg_len[k], 1e-300)
                t = min(max((relx * ab[k, 0] + rely * ab[k, 1]) / denom, 0.0), 1.0)
                offx, offy = relx - t * ab[k, 0], rely - t * ab[k, 1]
                dist = np.sqrt(offx * offx + offy * offy)
                if dist < best:
                    best, best_k, best_t = dist, k, t
        out[q] = cum[best_k] + best_t * seg_len[best_k] if best_k >= 0 else np.nan  # NaN point or no route
    return out
