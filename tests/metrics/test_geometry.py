"""Vectorised geometry against shapely on random polygons, boxes and polylines."""

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon

from drivefine_core.metrics.cache import flatten_polygons
from drivefine_core.metrics.geometry import boxes_overlap, box_corners, segment_hits_box
from drivefine_core.metrics.map_index import PolygonIndex, PolylineNearIndex


def _random_polygons(rng, n):
    polys = []
    for _ in range(n):
        c = rng.uniform(-40, 40, 2)
        k = int(rng.integers(3, 40))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(2, 25) * rng.uniform(0.4, 1.0, k)  # star-shaped, so non-convex but simple
        polys.append(c + np.stack([r * np.cos(ang), r * np.sin(ang)], -1))
    polys.append(np.array([[-30, -1.8], [60, -1.8], [60, 1.8], [-30, 1.8]]))  # long thin lane
    return polys


def test_polygon_index_matches_shapely():
    rng = np.random.default_rng(3)
    polys = _random_polygons(rng, 25)
    v, o = flatten_polygons(polys)
    for cell, extent in ((1.0, None), (2.5, None), (1.0, (np.array([-20.0, -20.0]), np.array([20.0, 20.0])))):
        idx = PolygonIndex(v, o, cell=cell, extent=extent)
        pts = rng.uniform(-80, 80, (4000, 2))
        got = idx.query(pts)
        want = np.stack([shapely.contains_xy(Polygon(p), pts[:, 0], pts[:, 1]) for p in polys], axis=1)
        np.testing.assert_array_equal(got, want)
        assert got.any() and not got.all()


def test_polyline_near_index_matches_shapely():
    rng = np.random.default_rng(4)
    line = np.cumsum(rng.normal(0, 3, (60, 2)), axis=0)
    idx = PolylineNearIndex(line, 0.5)
    pts = line[rng.integers(0, 60, 3000)] + rng.normal(0, 1.0, (3000, 2))
    ls = LineString(line)
    want = np.array([ls.distance(Point(p)) <= 0.5 for p in pts])
    np.testing.assert_array_equal(idx.within(pts), want)
    assert want.any() and not want.all()


def test_box_overlap_and_segment_match_shapely():
    rng = np.random.default_rng(5)
    n = 3000
    c1, c2 = rng.uniform(-5, 5, (n, 2)), rng.uniform(-5, 5, (n, 2))
    h1, h2 = rng.uniform(-np.pi, np.pi, n), rng.uniform(-np.pi, np.pi, n)
    l1, w1, l2, w2 = (rng.uniform(0.2, 3, n) for _ in range(4))
    got = boxes_overlap(c1, h1, l1, w1, c2, h2, l2, w2)
    b1 = shapely.polygons(box_corners(c1, h1, l1, w1))
    b2 = shapely.polygons(box_corners(c2, h2, l2, w2))
    np.testing.assert_array_equal(got, shapely.intersects(b1, b2))
    p, q = rng.uniform(-5, 5, (n, 2)), rng.uniform(-5, 5, (n, 2))
    seg = shapely.linestrings(np.stack([p, q], 1))
    np.testing.assert_array_equal(segment_hits_box(p, q, c2, h2, l2, w2), shapely.intersects(seg, b2))
    assert got.any() and not got.all()
