"""A seeded, random-access data order over a map-style dataset (models.PlannerBatch.of makes its batches
the planners' batch).

Micro-batch k of a run is a pure function of (seed, k, rank): it is shard k * world_size + rank of the run's
sequence of batch_size-sample shards; epoch e uses the permutation seeded by (seed, e) and holds whole
optimizer steps (world_size x grad_accum shards each), so the samples of a step do not depend on how its
global batch is split into processes and micro-steps. A resumed run needs only the step counter to continue
with exactly the samples the uninterrupted run would have seen - no iterator state to save. (The streaming Parquet dataset is for data that does not fit in memory; its
row-group order is seeded too, but resuming it means skipping samples, so the loops here use this one.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from drivefine_core.features.dataset import collate_features
from drivefine_core.training.schedule import derive_seed


class SeededBatches:
    """`batches(k)` -> the k-th batch (a dict of stacked tensors, strings as lists) for this rank.

    Every optimizer step's global batch holds `batch_size * world_size * grad_accum` samples; the samples
    left over at the end of an epoch are dropped so every step has the same size on every rank.
    """

    def __init__(
        self,
        dataset: Sequence[Any],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        collate: Callable[[list[Any]], Any] = collate_features,
        grad_accum: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size, self.collate = rank, world_size, collate
        self.global_batch = batch_size * world_size * grad_accum
        n = len(dataset)
        if n < self.global_batch:
            raise ValueError(f"dataset has {n} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} processes x {grad_accum} micro-steps)")
        self.shards_per_epoch = n // self.global_batch * world_size * grad_accum
        self._perm_epoch = -1
        self._perm = np.arange(n)

    def indices(self, k: int) -> list[int]:
        epoch, pos = divmod(k * self.world_size + self.rank, self.shards_per_epoch)
        if epoch != self._perm_epoch:
            rng = np.random.default_rng(derive_seed(self.seed, "epoch", epoch))
            self._perm, self._perm_epoch = rng.permutation(len(self.dataset)), epoch
        start = pos * self.batch_size
        return [int(i) for i in self._perm[start : start + self.batch_size]]

    def __call__(self, k: int) -> Any:
        return self.collate([self.dataset[i] for i in self.indices(k)])
