"""Torch datasets over the Parquet feature cache.

StreamingFeatureDataset reads row groups (local or s3://), never the whole store:
- the row groups are split across ranks (rank / world_size as accelerate gives them), then across the
  DataLoader workers of each rank, so no sample is read twice in an epoch;
- the order of row groups is reshuffled every epoch (set_epoch) with the same seed on every rank;
- each worker shuffles samples within a buffer (seeded by seed, epoch, rank, worker);
- images stay encoded until the worker yields the sample.

Give the DataLoader to the training loop as it is: passing it through accelerate's prepare() would
shard it a second time.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import pyarrow as pa
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from drivefine_core.features.params import FeatureParams
from drivefine_core.features.row_groups import RowGroup, list_row_groups, plan_row_groups, read_row_group
from drivefine_core.features.samples import decode_rows, table_columns


class StreamingFeatureDataset(IterableDataset):
    """Yields dicts of tensors (see samples.decode_rows) from the feature store at `uri`.

    even_ranks: cut every rank to the same number of samples (the smallest rank's), so that distributed
    steps stay in lockstep; the samples cut are the tail of the largest shards and differ per epoch.
    """

    def __init__(
        self,
        uri: str,
        params: FeatureParams | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
        even_ranks: bool = False,
        logs: list[str] | None = None,
        decode_images: bool = True,
    ) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.uri = uri
        self.params = params or FeatureParams()
        self.rank = rank
        self.world_size = world_size
        self.even_ranks = even_ranks
        self.decode_images = decode_images
        self.epoch = 0
        self.row_groups: list[RowGroup] = list_row_groups(uri, logs)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for this epoch; call on every rank before iterating (as with DistributedSampler)."""
        self.epoch = epoch

    def _plan(self, num_workers: int) -> list[list[RowGroup]]:
        return plan_row_groups(
            self.row_groups,
            rank=self.rank,
            world_size=self.world_size,
            num_workers=num_workers,
            seed=self.params.seed,
            epoch=self.epoch,
            shuffle=self.params.shuffle,
            even_ranks=self.even_ranks,
        )

    def __len__(self) -> int:
        """Samples this rank yields per epoch (independent of the number of workers)."""
        return sum(g.take for groups in self._plan(1) for g in groups)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = self._plan(num_workers)[worker_id]
        rng = random.Random(f"{self.params.seed}/{self.epoch}/{self.rank}/{worker_id}")
        buffer: list[dict[str, Any]] = []
        cap = self.params.shuffle_buffer if self.params.shuffle else 1
        for group in mine:
            table = read_row_group(group)
            if group.take < table.num_rows:
                table = table.slice(0, group.take)
            for row in _rows(table):
                if len(buffer) < cap:
                    buffer.append(row)
                    continue
                i = rng.randrange(len(buffer))
                out, buffer[i] = buffer[i], row
                yield decode_rows(out, self.decode_images)
        rng.shuffle(buffer)
        for row in buffer:
            yield decode_rows(row, self.decode_images)


def _rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rows of a row group as dicts of numpy arrays / bytes (images still encoded)."""
    cols = table_columns(table)
    for i in range(table.num_rows):
        yield {k: v[i] for k, v in cols.items()}


class InMemoryFeatureDataset(Dataset):
    """Map-style: every row of the store in memory (images encoded, decoded in __getitem__). Tiny data only."""

    def __init__(self, uri: str, logs: list[str] | None = None, decode_images: bool = True) -> None:
        groups = list_row_groups(uri, logs)
        tables = [read_row_group(g) for g in groups]
        self._cols = table_columns(pa.concat_tables(tables)) if tables else {}
        self._n = sum(t.num_rows for t in tables)
        self.decode_images = decode_images

    def __len__(self) -> int:
        return self._n

    @property
    def tokens(self) -> list[str]:
        """Scene tokens in row order, without decoding any sample."""
        return list(self._cols.get("token", []))

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return decode_rows({k: v[i] for k, v in self._cols.items()}, self.decode_images)


def collate_features(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors along a new batch dim; strings become lists."""
    if not batch:
        raise ValueError("collate_features: empty batch")
    out: dict[str, Any] = {}
    for key, first in batch[0].items():
        values = [b[key] for b in batch]
        out[key] = torch.stack(values) if isinstance(first, torch.Tensor) else list(values)
    return out

