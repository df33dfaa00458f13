"""BEV raster targets drawn from metric caches, for the vision towers' auxiliary head."""

from __future__ import annotations

import numpy as np
import torch

from tests.metrics.toy_scenes import ToyAgent, straight_road
from drivefine_core.models import ModelParams
from drivefine_core.training.bev_targets import WithBEV, bev_raster

P = ModelParams(bev_cells=(32, 32), bev_cell_m=2.0)


def test_straight_road_raster() -> None:
    """Road y in [-5.4, 5.4] (3 lanes of 3.6 m), on-route lanes y in [-1.8, 5.4]; a car 20 m ahead.
    Columns run from y = +32 (column 0) to y = -32 (column 31) in 2 m cells; rows forward 0..64 m."""
    cache = straight_road([ToyAgent(x=21.0, y=0.0)])
    drivable, route, agents = bev_raster(cache, P)
    col = lambda y: int((32 - y) // 2)  # noqa: E731
    assert drivable[:, col(0.0)].all() and drivable[:, col(4.0)].all()  # the carriageway, all along
    assert not drivable[:, col(10.0)].any() and not drivable[:, col(-10.0)].any()  # off the road
    assert route[:, col(0.0)].all() and not route[:, col(-4.5)].any()  # the oncoming lane is off-route
    rows, cols = np.nonzero(agents)
    # x 18.75..23.25 m: rows 9 and 11 are 62% covered, row 10 fully; y -1..1: half of columns 15 and 16
    assert set(rows) == {9, 10, 11} and set(cols) == {col(0.9), col(-0.9)}
    assert not agents[:5].any()


def test_with_bev_marks_scenes_without_cache() -> None:
    cache = straight_road(token="a")
    data = [{"x": torch.zeros(1)}, {"x": torch.ones(1)}]
    ds = WithBEV(data, ["a", "b"], [cache], P)
    assert ds[0]["bev"].shape == (3, 32, 32) and float(ds[0]["bev_valid"]) == 1.0 and ds[0]["bev"].sum() > 0
    assert float(ds[1]["bev_valid"]) == 0.0 and ds[1]["bev"].sum() == 0
    assert "bev" not in data[0]  # the wrapped samples are not modified


def test_agent_min_cover_sets_partly_covered_cells() -> None:
    """A car at y = 0.8 spans y -0.2..1.8: a tenth of column 16 (y -2..0); set only below half cover."""
    cache = straight_road([ToyAgent(x=21.0, y=0.8)])
    half_all = bev_raster(cache, P)
    touched_all = bev_raster(cache, P.model_copy(update={"bev_agent_min_cover": 1 / 16}))
    half, touched = half_all[2], touched_all[2]
    assert set(np.nonzero(half)[1]) == {15}
    assert set(np.nonzero(touched)[1]) == {15, 16}
    assert (touched >= half).all()
    np.testing.assert_array_equal(touched_all[:2], half_all[:2])  # drivable area and route unchanged
