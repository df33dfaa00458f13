"""Learned planners on navhard: at a stage-2 start a planner reads the moved ego state from the stage-2 cache
and the camera of the logged scene of the same log nearest in time."""

from __future__ import annotations

import numpy as np
import torch

from drivefine_core.evaluation.agents import FeatureIndex, planner_agent
from drivefine_core.evaluation.navhard import covered, logged_cameras
from drivefine_core.metrics.navhard import NavhardGroup
from drivefine_core.models import DriveFinePlanner
from tests.metrics.toy_scenes import straight_road
from tests.models.conftest import tiny_params

SEC = 1_000_000


def _scene(token: str, log: str, t_s: float, speed: float = 10.0):
    return straight_road(token=token, log_name=log, timestamp_us=int(t_s * SEC), ego_speed=speed)


def test_each_stage_two_start_takes_the_nearest_logged_scene_of_its_log() -> None:
    logged = [_scene(f"a{t}", "a", t) for t in (0, 1, 2, 4)] + [_scene("b4", "b", 4.0)]
    syn_now = [_scene("s-now-0", "a", 4.0), _scene("s-now-1", "a", 2.1)]
    syn_prev = [_scene("s-prev", "a", 3.0)]  # 1 s from the nearest logged scene of log a: too far
    group = NavhardGroup(logged[2], syn_now, logged[1], syn_prev)
    cams = logged_cameras([group], logged)
    assert cams == {"s-now-0": "a4", "s-now-1": "a2"}  # never log b's scene at the same time
    assert covered([group], cams) == []  # one start without a camera: the group is not scored for planners
    assert covered([group], logged_cameras([group], logged, max_gap_us=SEC)) == [group]


class _Rows(FeatureIndex):
    """A feature index over rows in memory (the store's rows hold the same fields)."""

    def __init__(self, rows: dict[str, dict]) -> None:
        self.dataset = list(rows.values())
        self.row_of = {t: i for i, t in enumerate(rows)}


def test_stage_two_batches_read_the_cache_and_the_logged_camera() -> None:
    p = tiny_params()
    g = torch.Generator().manual_seed(0)
    logged = _scene("a4", "a", 4.0)
    row = {"image": torch.rand(1, 3, p.image_height, p.image_width, generator=g),
           "command": torch.tensor([0.0, 1.0, 0.0, 0.0]), "velocity": torch.tensor([10.0, 0.0]),
           "acceleration": torch.zeros(2), "history": torch.zeros(4, 3)}
    features = _Rows({"a4": row})
    moved = _scene("s-now-0", "a", 4.0, speed=6.0)
    batch = features.batch_from_caches([moved], {"s-now-0": "a4"})
    assert torch.equal(batch["image"][0], row["image"][0])  # (1, 3, H, W) views folded onto channels
    np.testing.assert_allclose(batch["velocity"][0].numpy(), moved.ego_velocity, atol=1e-6)
    np.testing.assert_allclose(batch["history"][0, :3].numpy(), moved.past_states[[0, 5, 10], :3], atol=1e-5)
    assert torch.equal(batch["history"][0, 3], torch.zeros(3))  # the current pose is the origin
    torch.manual_seed(0)
    planner = DriveFinePlanner(p)
    agent = planner_agent(planner, "mdm", features, cameras={"s-now-0": "a4"})
    plans = agent([logged, moved])  # a stage-1 scene (its feature row) and a stage-2 start in one call
    assert plans.shape == (2, 8, 3)
    alone = planner_agent(planner, "mdm", features, cameras={"s-now-0": "a4"})([moved])
    assert np.array_equal(alone[0], plans[1])  # the stage-2 row is planned from the cache, the same either way
