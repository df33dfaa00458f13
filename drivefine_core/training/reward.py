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
        rewards = np.nan_to_num(self.scores(caches, trajectories)[self.key], nan=0.0)
        for c in caches:  # RL draws thousands of scenes, rarely twice: a cache read from Parquet re-wraps its stored
            # tables in ~20 us when drawn again; one built in memory would otherwise keep its own (~0.5 MB)
            c.forget("index")
        return rewards


class PairedScenes(Sequence):
    """Lazy (sample, cache) pairs over a map-style feature dataset: only the scene tokens are read up front
    (`tokens`), images are decoded when a pair is indexed. Samples without a metric cache are left out."""

    def __init__(self, dataset: Sequence[dict[str, Any]], tokens: Sequence[str], caches: Sequence[MetricCache],
                 limit: int = 0) -> None:
        if len(tokens) != len(dataset):
            raise ValueError(f"{len(tokens)} tokens for {len(dataset)} samples")
        by_token = {c.token: c for c in caches}
        self.dataset = dataset
        self.index = [(i, by_token[t]) for i, t in enumerate(tokens) if t in by_token]
        if limit:
            self.index = self.index[:limit]
        if not self.index:
            raise ValueError(f"no feature sample has a metric cache ({len(tokens)} samples, {len(caches)} caches): "
                             "were both built from the same split?")

    def __len__(self) -> int:
        return len(self.index)

    def caches(self) -> list[MetricCache]:
        """Every pair's metric cache, without decoding any sample."""
        return [c for _, c in self.index]

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        i, cache = self.index[k]
        return self.dataset[i], cache


def collate_scenes(items: list[tuple[dict[str, Any], MetricCache]]) -> tuple[dict[str, Any], list[MetricCache]]:
    return collate_features([s for s, _ in items]), [c for _, c in items]
