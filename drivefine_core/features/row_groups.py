"""Row groups of a feature store: listing, the per-epoch plan across ranks and workers, reading."""

from __future__ import annotations

import dataclasses
import os
import random
from collections import OrderedDict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from drivefine_core.features.arrow_schema import read_metadata
from drivefine_core.features.manifest import load_manifest
from drivefine_core.storage import filesystem_for, join_uri, list_prefix

_OPEN_FILES = 8  # ParquetFiles kept open per process: a worker reads several groups of one file


@dataclass(frozen=True)
class RowGroup:
    uri: str  # the Parquet file
    index: int  # row group index in the file
    rows: int
    take: int  # rows to yield (< rows only when even_ranks cut this group)


def _log_of(uri: str) -> str:
    """'<store>/log=<name>/part-0.parquet' -> '<name>' ('' when the path has no log= folder)."""
    folder = uri.rsplit("/", 2)[-2] if uri.count("/") >= 2 else ""
    return folder[len("log=") :] if folder.startswith("log=") else ""


def list_row_groups(store_uri: str, logs: list[str] | None = None) -> list[RowGroup]:
    """Every row group of the store (optionally of some logs only), in a fixed order.

    The manifest gives the row-group sizes; without one (a store copied without it) the footers are read.
    """
    manifest = load_manifest(store_uri)
    wanted = set(logs) if logs is not None else None
    groups: list[RowGroup] = []
    if manifest.logs:
        for name in sorted(manifest.logs):
            if wanted is not None and name not in wanted:
                continue
            entry = manifest.logs[name]
            uri = join_uri(store_uri, entry.path)
            groups += [RowGroup(uri, i, n, n) for i, n in enumerate(entry.row_groups)]
    else:
        for obj in list_prefix(store_uri):
            name = _log_of(obj.uri)
            if not obj.uri.endswith(".parquet") or not name:
                continue
            if wanted is not None and name not in wanted:
                continue
            meta = _parquet_file(obj.uri).metadata
            groups += [RowGroup(obj.uri, i, meta.row_group(i).num_rows, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    if wanted is not None:
        found = {_log_of(g.uri) for g in groups}
        missing = sorted(wanted - found)
        if missing:
            raise ValueError(f"{store_uri}: logs not in the feature store: {missing}")
    return groups


def store_logs(store_uri: str) -> list[str]:
    """The log names of a feature store, sorted."""
    return sorted({_log_of(g.uri) for g in list_row_groups(store_uri)})


def plan_row_groups(
    groups: list[RowGroup],
    *,
    rank: int,
    world_size: int,
    num_workers: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    even_ranks: bool,
) -> list[list[RowGroup]]:
    """This rank's row groups, one list per worker, for one epoch.

    Every rank computes the same global order (seeded by seed and epoch), takes every world_size-th group
    from position `rank`, and deals them to its workers in turn: disjoint across ranks and workers, and a
    rank's set does not depend on its number of workers.
    """
    order = list(range(len(groups)))
    if shuffle:
        random.Random(f"{seed}/{epoch}").shuffle(order)
    per_rank = [[groups[j] for k, j in enumerate(order) if k % world_size == r] for r in range(world_size)]
    mine = per_rank[rank]
    if even_ranks:
        target = min(sum(g.rows for g in rk) for rk in per_rank)
        excess = sum(g.rows for g in mine) - target
        cut = list(mine)
        for i in range(len(cut) - 1, -1, -1):  # trim from the tail of the rank's order
            if excess <= 0:
                break
            drop = min(excess, cut[i].take)
            cut[i] = dataclasses.replace(cut[i], take=cut[i].take - drop)
            excess -= drop
        mine = [g for g in cut if g.take > 0]
    return [mine[w::num_workers] for w in range(num_workers)]


_files: "OrderedDict[tuple[int, str], pq.ParquetFile]" = OrderedDict()


def _parquet_file(uri: str) -> pq.ParquetFile:
    key = (os.getpid(), uri)  # file handles must not cross a fork into DataLoader workers
    pf = _files.get(key)
    if pf is None:
        fs, path = filesystem_for(uri)
        pf = pq.ParquetFile(fs.open_input_file(path))
        read_metadata(pf.schema_arrow, uri)
        _files[key] = pf
        while len(_files) > _OPEN_FILES:
            _files.popitem(last=False)
    else:
        _files.move_to_end(key)
    return pf


def read_row_group(group: RowGroup) -> pa.Table:
    return _parquet_file(group.uri).read_row_group(group.index)
