"""Tiny RL / SFT data for the training tests: the metrics' hand-made toy scenes (real MetricCaches, scored by
the real scorer) paired with feature samples built from them (random image, ego state, history, target)."""

from __future__ import annotations

import torch

from tests.metrics import toy_scenes as T
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models import ModelParams
from tests.training.toy import sample_from_cache

torch.set_num_threads(1)


def tiny_params(**overrides: object) -> ModelParams:
    base: dict[str, object] = dict(
        width=32, depth=3, heads=2, mlp_ratio=2.0, n_refine_blocks=1, image_height=16, image_width=16,
        patch_size=8, vision_width=16, vision_depth=1, vision_heads=2, flow_width=16, mdm_steps=4,
    )
    base.update(overrides)
    return ModelParams(**base)  # type: ignore[arg-type]


def toy_caches() -> list[MetricCache]:
    return [
        T.straight_road(ego_speed=6.0, token="s6"),
        T.straight_road(ego_speed=10.0, token="s10"),
        T.straight_road([T.ToyAgent(40.0, 0.0)], ego_speed=8.0, token="lead"),
        T.curved_road(ego_speed=8.0, token="curve"),
        T.intersection(ego_speed=8.0, red_from_step=None, token="green"),
        T.intersection(ego_speed=8.0, red_from_step=0, token="red"),
    ]


def toy_scenes(p: ModelParams) -> list[tuple[dict, MetricCache]]:
    return [(sample_from_cache(c, p, torch.Generator().manual_seed(i)), c) for i, c in enumerate(toy_caches())]
