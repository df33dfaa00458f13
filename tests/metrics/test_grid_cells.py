"""The compact grid tables the scorer reads as stored: occupied-cell CSR (grid_cells) and named edge pieces
(edge_pieces) against their plain definitions."""

import numpy as np

from drivefine_core.metrics.edge_pieces import cut, edge_ends, piece_ends
from drivefine_core.metrics.grid_cells import CellTable, narrow


def _dense(rng, n_cells: int, occupied: float) -> np.ndarray:
    counts = np.where(rng.random(n_cells) < occupied, rng.integers(1, 6, n_cells), 0)
    return np.concatenate([[0], np.cumsum(counts)])


def test_cell_table_answers_as_the_dense_pointers():
    rng = np.random.default_rng(0)
    for n_cells, occupied in ((1, 1.0), (31, 0.5), (32, 0.5), (33, 0.0), (5000, 0.1), (70_000, 0.3)):
        dense = [_dense(rng, n_cells, occupied), _dense(rng, n_cells, occupied / 2)]
        table = CellTable.of(dense)
        cells = np.concatenate([np.arange(min(n_cells, 200)), rng.integers(0, n_cells, 500), [n_cells - 1]])
        start, count = table.lookup(cells)
        for k, ptr in enumerate(dense):
            np.testing.assert_array_equal(count[:, k], ptr[cells + 1] - ptr[cells])
            has = count[:, k] > 0
            np.testing.assert_array_equal(start[has, k], ptr[cells[has]])
        assert table.ptr.dtype.itemsize <= 4 and table.words.nbytes <= 8 * (n_cells // 32 + 1)


def test_pieces_recomputed_from_their_names_are_bit_identical():
    """The query recomputes a piece from (start, end, k, n); it must give the very bits the grid was built
    from (the historical cut: a + k / n * (b - a) on (R, 2) arrays)."""
    rng = np.random.default_rng(1)
    vertices = np.cumsum(rng.normal(0, 3.0, (400, 2)), axis=0) + rng.uniform(-1e3, 1e3, 2)
    nxt = np.arange(1, 401) % 400
    starts, ends, parent, k, n = cut(vertices, vertices[nxt], 1.0)
    t0, t1 = (k / n)[:, None], ((k + 1) / n)[:, None]
    d = vertices[nxt][parent] - vertices[parent]
    np.testing.assert_array_equal(starts, vertices[parent] + t0 * d)
    np.testing.assert_array_equal(ends, vertices[parent] + t1 * d)
    assert (n > 1).any()
    rows = narrow(np.stack([parent, nxt[parent], k, n], axis=1))
    x1, y1, x2, y2 = piece_ends(edge_ends(vertices, rows), rows[:, 2], rows[:, 3])
    np.testing.assert_array_equal(np.stack([x1, y1], 1), starts)
    np.testing.assert_array_equal(np.stack([x2, y2], 1), ends)
