from __future__ import annotations

import numpy as np
import pytest
import torch

from drivefine_core.features.tokenizer import encode
from drivefine_core.models import FAMILIES, DriveFinePlanner, ModelParams, Planner, SpanVLAPlanner

torch.set_num_threads(1)


def tiny_params(**overrides: object) -> ModelParams:
    base: dict[str, object] = dict(
        width=32, depth=4, heads=2, mlp_ratio=2.0, n_refine_blocks=1, image_height=32, image_width=32,
        patch_size=16, vision_width=16, vision_depth=1, vision_heads=2, flow_width=16, mdm_steps=6,
    )
    base.update(overrides)
    return ModelParams(**base)  # type: ignore[arg-type]


def make_batch(p: ModelParams, b: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Plausible scenes: a history at constant speed and turn rate, a future that accelerates and turns
    differently (so the history extrapolation is not already the answer)."""
    g = torch.Generator().manual_seed(seed)
    speed = 3 + 7 * torch.rand(b, generator=g)
    yaw_rate = 0.1 * (torch.rand(b, generator=g) - 0.5)
    accel = 4 * (torch.rand(b, generator=g) - 0.5)
    future_yaw_rate = yaw_rate + 0.2 * (torch.rand(b, generator=g) - 0.5)

    def arc(t: torch.Tensor, acc: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        h = rate[:, None] * t
        dist = speed[:, None] * t + 0.5 * acc[:, None] * t**2
        return torch.stack([dist * torch.cos(h / 2), dist * torch.sin(h / 2), h], -1)

    target = arc(torch.arange(1, 9) * 0.5, accel, future_yaw_rate)
    history = arc(torch.arange(-3, 1) * 0.5, torch.zeros(b), yaw_rate)
    tokens = torch.from_numpy(encode(target.numpy().astype(np.float64)))
    return {
        "image": torch.rand(b, 3 * p.num_views, p.image_height, p.image_width, generator=g),
        "command": torch.nn.functional.one_hot(torch.randint(0, 4, (b,), generator=g), 4).float(),
        "velocity": torch.stack([speed, torch.zeros(b)], -1),
        "acceleration": torch.stack([accel, torch.zeros(b)], -1),
        "history": history,
        "target": target,
        "target_tokens": tokens,
    }


@pytest.fixture
def params() -> ModelParams:
    return tiny_params()


def build_planners(params: ModelParams) -> dict[str, Planner]:
    """Each family's planner, seeded, in eval mode."""
    torch.manual_seed(0)
    return {f: Planner.build(f, params).eval() for f in FAMILIES}


@pytest.fixture
def planners(params: ModelParams) -> dict[str, Planner]:
    return build_planners(params)


@pytest.fixture
def drivefine(planners: dict[str, Planner]) -> DriveFinePlanner:
    planner = planners["drivefine"]
    assert isinstance(planner, DriveFinePlanner)
    return planner


@pytest.fixture
def spanvla(planners: dict[str, Planner]) -> SpanVLAPlanner:
    planner = planners["spanvla"]
    assert isinstance(planner, SpanVLAPlanner)
    return planner


@pytest.fixture
def batch(params: ModelParams) -> dict[str, torch.Tensor]:
    return make_batch(params)
