"""Rewards: the batched NAVSIM scorer behind one callable, and the scene data RL iterates over.

A reward function maps (S scenes' metric caches, (S, G, 8, 3) ego-frame trajectories) to (S, G) floats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivefine_core.features.dataset import collate_features
from drivefine_core.metrics.cache import MetricCache

RewardFn = Callable[[Sequence[MetricCache], np.ndarray], np.ndarray]
REWARD_KEYS = ("v1/pdms", "v2/epdms")


@dataclass
class ScorerReward:
    """PDMS (v1) or EPDMS (v2) of every candidate, from metrics.scorer.score_trajectories."""

    key: str = "v1/pdms"

    def __post_init__(self) -> None:
        if self.key not in REWARD_KEYS:
            raise ValueError(f"reward key must be one of {REWARD_KEYS}, got {self.key!r}")

    def scores(self, caches: Sequence[MetricCache], trajectories: np.ndarray) -> dict[str, np.ndarray]:
        from drivefine_core.metrics.scorer import score_trajectories

        return score_trajectories(caches, trajectories, version=self.key.split("/")[0])

    def __call__(self, caches: Sequence[MetricCache], trajectories: np.ndarray) -> np.ndarray:
        return np.nan_to_num(self.scores(caches, trajectories)[self.key], nan=0.0)


def pair_features_with_caches(samples: Sequence[dict[str, Any]], caches: Sequence[MetricCache]
                              ) -> list[tuple[dict[str, Any], MetricCache]]:
    """Join feature samples and metric caches on the scene token; samples without a cache are left out
    (RL needs the scorer), caches without a sample too. Raises when nothing matches."""
    by_token = {c.token: c for c in caches}
    pairs = [(s, by_token[s["token"]]) for s in samples if s.get("token") in by_token]
    if not pairs:
        raise ValueError(f"no feature sample has a metric cache ({len(samples)} samples, {len(caches)} caches): "
                         "were both built from the same split?")
    return pairs


def collate_scenes(items: list[tuple[dict[str, Any], MetricCache]]) -> tuple[dict[str, Any], list[MetricCache]]:
    return collate_features([s for s, _ in items]), [c for _, c in items]
