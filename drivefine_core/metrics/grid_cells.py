"""CSR tables over the occupied cells of a dense grid, compact enough to keep for thousands of scenes and used
as they are stored (no unpacking): a bitmap of the occupied cells with the rank of each word gives a cell's
slot, and the row pointers run over the slots only. A scene's 260 m grid has ~68k cells of which ~10%
hold anything, so a dense int64 pointer array (0.5 MB a table) becomes ~16 kB of words plus one narrow
pointer per occupied cell. A word packs 32 cells' bits (low half) with the number of occupied cells before
them (high half), so finding a cell's slot is one gather."""

from __future__ import annotations

from typing import Sequence

import numpy as np

_WORD = 32  # cells per word


def narrow(a: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds them (indexing works on any)."""
    top = int(a.max()) if a.size else 0
    for t in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(t).max:
            return a.astype(t)
    return a.astype(np.int64)


class CellTable:
    """k CSR tables sharing one grid of n cells: `words` (n / 32,) uint64 [rank << 32 | occupancy bits],
    `ptr` (slots + 2, k) row pointers of each table over the occupied cells in cell order (the last row
    repeated, so that slot + 1 is always a valid row)."""

    def __init__(self, words: np.ndarray, ptr: np.ndarray):
        self.words, self.ptr = words, ptr

    @staticmethod
    def of(ptrs: Sequence[np.ndarray]) -> "CellTable":
        """From dense (n + 1,) row pointers over every cell (one per table, same grid)."""
        dense = np.stack(ptrs, axis=1)
        occupied = (np.diff(dense, axis=0) > 0).any(axis=1)
        n_words = -(-len(occupied) // _WORD)
        bits = np.zeros(n_words * _WORD, dtype=bool)
        bits[: len(occupied)] = occupied
        bits32 = np.packbits(bits, bitorder="little").view("<u4").astype(np.uint64)
        counts = np.bitwise_count(bits32).astype(np.uint64)
        rank = np.cumsum(counts) - counts
        slots = np.flatnonzero(occupied)
        ptr = np.concatenate([dense[slots], dense[-1:], dense[-1:]])
        return CellTable((rank << np.uint64(32)) | bits32, narrow(ptr))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"words": self.words, "ptr": self.ptr}

    def lookup(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M,) flat cells -> start and count (M, k) int64 of each table's rows for each cell."""
        start, count = cell_bounds([self], cells[None], np.ones((1, len(cells)), dtype=bool))
        return start, count


def cell_bounds(tables: Sequence[CellTable], cell: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, M) flat cells in scene s's table s (ok: on the grid) -> start and count (S * M, k) int64 of every
    table's rows; count 0 off the grid or in an empty cell. Two gathers per scene, the rest in one pass."""
    s, m = cell.shape
    w = cell >> 5
    word = np.stack([np.take(t.words, w[i]) for i, t in enumerate(tables)])
    bit = (cell & (_WORD - 1)).astype(np.uint64)
    occupied = ok & (((word >> bit) & np.uint64(1)) == 1)
    below = word & ((np.uint64(1) << bit) - np.uint64(1))  # the word's occupied cells before this one
    slot = ((word >> np.uint64(32)) + np.bitwise_count(below)).astype(np.int64)
    pair = np.stack([slot, slot + 1], axis=1)  # (S, 2, M)
    bounds = np.stack([np.take(t.ptr, pair[i], axis=0) for i, t in enumerate(tables)])  # (S, 2, M, k)
    start = bounds[:, 0].astype(np.int64).reshape(s * m, -1)
    end = bounds[:, 1].astype(np.int64).reshape(s * m, -1)
    return start, np.where(occupied.reshape(-1, 1), end - start, 0)


def expand(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query (M,) start / count of its CSR rows -> all (query, row position) pairs, queries in order."""
    rows = np.repeat(np.arange(len(count)), count)
    pos = np.arange(len(rows)) + (start - (np.cumsum(count) - count))[rows]
    return rows, pos
