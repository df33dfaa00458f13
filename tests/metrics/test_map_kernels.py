"""The compiled map look-ups (batch_map over map_kernels) against the indexes' own array queries."""

import numpy as np
import pytest

from drivefine_core.metrics.batch_map import inside_polygons, near_polyline, polygon_kinds, polygon_pairs
from drivefine_core.metrics.map_index import PolygonIndex, PolylineNearIndex


def _comb(x0: float, teeth: int, pitch: float) -> np.ndarray:
    """A comb with teeth far thinner than a grid cell: a short segment crosses many edges of one polygon."""
    top = []
    for k in range(teeth):
        x = x0 + k * pitch
        top += [(x, 0.0), (x, 5.0), (x + pitch / 2, 5.0), (x + pitch / 2, 0.0)]
    return np.array([(x0, -2.0), *top, (x0 + teeth * pitch, -2.0)])


def _index(rng: np.random.Generator, union_interior: bool = False) -> PolygonIndex:
    rings = [_comb(0.0, 12, 0.3), _comb(1.0, 5, 0.7)]  # overlapping combs
    for _ in range(6):  # random star-shaped polygons, some overlapping the combs
        c = rng.uniform(-10, 10, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        rings.append(c + rng.uniform(1, 6, (9, 1)) * np.stack([np.cos(angles), np.sin(angles)], 1))
    vertices = np.concatenate(rings)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rings])])
    # the grid covers [-8, 8]^2 only: points beyond it but inside the bounds take the brute-force path
    return PolygonIndex(vertices, offsets, cell=1.0, extent=(np.array([-8.0, -8.0]), np.array([8.0, 8.0])),
                        union_interior=union_interior)


@pytest.mark.parametrize("union_interior", [False, True])
def test_polygon_pairs_and_inside_match_the_index_query(union_interior):
    rng = np.random.default_rng(0)
    indexes = [_index(rng, union_interior) for _ in range(3)]
    assert all(x.interior.any() for x in indexes) == union_interior
    points = rng.uniform(-16, 16, size=(3, 3000, 2))
    points[:, :500] = rng.uniform(-0.5, 5.5, size=(3, 500, 2))  # among the comb teeth
    q, p = polygon_pairs(indexes, points)
    got = {(int(a), int(b)) for a, b in zip(q, p)}
    assert len(got) == len(q)  # every pair once
    want = set()
    for i, x in enumerate(indexes):
        r, c = x.query_pairs(points[i])
        want |= {(i * 3000 + int(a), int(b)) for a, b in zip(r, c)}
    assert got == want
    assert len(want) > 1000
    inside = inside_polygons(indexes, points).reshape(-1)
    expected = np.zeros(inside.shape, dtype=bool)
    expected[[a for a, _ in want]] = True
    np.testing.assert_array_equal(inside, expected)
    kinds = [rng.integers(0, 4, x.num_polygons) for x in indexes]
    masks = polygon_kinds(indexes, kinds, points).reshape(-1)
    expected_masks = np.zeros(masks.shape, dtype=np.uint8)
    for a, b in want:
        expected_masks[a] |= 1 << int(kinds[a // 3000][b])
    np.testing.assert_array_equal(masks, expected_masks)
    assert len(np.unique(masks)) > 4


def test_union_interior_cells_answer_inside_across_shared_edges():
    """A road of abutting rectangles (shared edges across it): the cells the shared edges cross are inside the
    union and answer without an edge test, the same as the per-polygon test; cells on the outer boundary are
    not flagged."""
    xs = np.arange(0.0, 41.0, 4.0) + 0.37  # shared edges at 4.37, 8.37, ...
    rings = [np.array([(a, -3.5), (b, -3.5), (b, 3.5), (a, 3.5)]) for a, b in zip(xs[:-1], xs[1:])]
    vertices = np.concatenate(rings)
    offsets = np.arange(len(rings) + 1) * 4
    plain, fast = (PolygonIndex(vertices, offsets, cell=1.0, union_interior=u) for u in (False, True))
    assert fast.interior.sum() > 0 and not plain.interior.any()
    rng = np.random.default_rng(3)
    points = np.stack([rng.uniform(-2, 43, 20000), rng.uniform(-5, 5, 20000)], axis=1)
    want = plain.query(points).any(axis=1)
    np.testing.assert_array_equal(inside_polygons([fast], points[None])[0], want)
    np.testing.assert_array_equal(inside_polygons([plain], points[None])[0], want)
    on_edge = np.array([[xs[3], 0.2]])  # on a shared edge: the crossing rule gives it to one side
    assert plain.query(on_edge).sum() == 1 and inside_polygons([fast], on_edge[None])[0, 0]
    edge = np.array([[xs[3] + 0.01, 3.49]])  # near the outer boundary: tested edge by edge
    assert inside_polygons([fast], edge[None])[0, 0] and not inside_polygons([fast], (edge + [0, 0.02])[None])[0, 0]


def test_near_polyline_matches_the_index_query():
    rng = np.random.default_rng(1)
    lines = [np.cumsum(rng.normal(0, 2, size=(40, 2)), axis=0) for _ in range(3)]
    indexes = [PolylineNearIndex(line, radius=1.5) for line in lines]
    points = np.stack([line.mean(0) + rng.normal(0, 8, size=(2000, 2)) for line in lines])
    got = near_polyline(indexes, points)
    want = np.stack([x.within(points[i]) for i, x in enumerate(indexes)])
    np.testing.assert_array_equal(got, want)
    assert 0.05 < want.mean() < 0.95
