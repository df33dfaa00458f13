"""The Parquet feature cache: one file per log (`log=<name>/part-0.parquet`), keyed for reuse.

A partition's key is (log content digest, feature params digest). `_manifest.json` records the key of
every partition, so a rerun rebuilds only the logs whose scenes / images or whose build params changed:
adding a log computes that log, changing the image size recomputes all of them. See partition.py for
what the content digest covers.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable, Iterable

from tqdm import tqdm

from drivefine_core.data.schema import Scene
from drivefine_core.executor.core import Executor, WorkerLostError, make_executor
from drivefine_core.features.manifest import Manifest, PartitionEntry, load_manifest, save_manifest
from drivefine_core.features.params import FeatureParams
from drivefine_core.features.partition import (
    BuiltPartition,
    PartitionJob,
    build_partition,
    log_content_digest,
    log_error,
    partition_key,
    partition_path,
)
from drivefine_core.storage import StorageParams, delete, join_uri, open_uri, stat
from drivefine_core.storage.safe_paths import UnsafePathError, shown
from drivefine_core.storage.uri import is_transient

__all__ = ["StoreResult", "build_feature_store", "partition_path"]

log = logging.getLogger(__name__)


@dataclass
class StoreResult:
    written: list[str] = field(default_factory=list)  # logs computed in this run
    reused: list[str] = field(default_factory=list)  # logs whose partition was already up to date
    removed: list[str] = field(default_factory=list)  # logs of this split no longer in the input
    failed: dict[str, str] = field(default_factory=dict)  # log -> error (nothing written for it)
    scenes: int = 0  # rows in the store for this run's logs (written + reused)
    scenes_written: int = 0
    bytes: int = 0  # Parquet bytes for this run's logs
    bytes_written: int = 0
    clipped_values: int = 0  # target values outside the tokenizer's range (written logs)
    seconds: float = 0.0  # wall time of the whole call

    @property
    def bytes_per_scene(self) -> float:
        return self.bytes / self.scenes if self.scenes else 0.0

    @property
    def scenes_per_s(self) -> float:
        """Scenes written per second of wall time."""
        return self.scenes_written / self.seconds if self.seconds > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        """Numbers only, for mlflow.log_metrics / a DVC metrics file."""
        return {
            "logs_written": float(len(self.written)),
            "logs_reused": float(len(self.reused)),
            "logs_failed": float(len(self.failed)),
            "logs_removed": float(len(self.removed)),
            "scenes": float(self.scenes),
            "scenes_written": float(self.scenes_written),
            "bytes_per_scene": self.bytes_per_scene,
            "scenes_per_s": self.scenes_per_s,
            "clipped_values": float(self.clipped_values),
        }

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable summary (for metrics files and MLflow)."""
        return {
            "written": self.written,
            "reused": self.reused,
            "removed": self.removed,
            "failed": self.failed,
            "scenes": self.scenes,
            "scenes_written": self.scenes_written,
            "bytes": self.bytes,
            "bytes_written": self.bytes_written,
            "bytes_per_scene": round(self.bytes_per_scene, 1),
            "clipped_values": self.clipped_values,
            "seconds": round(self.seconds, 3),
            "scenes_per_s": round(self.scenes_per_s, 2),
        }


def _group_by_log(
    items: Iterable[Scene | tuple[Scene, str]],
) -> Iterable[tuple[str, list[Scene], str | None, str | None]]:
    """Consecutive scenes of one log form its group: (log, scenes, image folder or None, error or None).

    A log that comes back later (two sources sharing one log_name), or whose scenes name different
    image folders, is yielded with an error instead of stopping the others.
    """
    seen: set[str] = set()
    pairs = ((i, None) if isinstance(i, Scene) else (i[0], i[1]) for i in items)
    for name, group in groupby(pairs, key=lambda p: p[0].log_name):
        members = list(group)
        if name in seen:
            yield name, [], None, (f"log {name}: field 'log_name': scenes of this log are not contiguous in the input "
                                   "(two logs share this log_name?)")
            continue
        seen.add(name)
        folders = {f for _, f in members}
        if len(folders) > 1:
            yield name, [], None, f"log {name}: field 'source_split': scenes name several image folders {sorted(map(str, folders))}"
            continue
        yield name, [s for s, _ in members], folders.pop(), None


class _Recorder:
    """Applies finished partitions to the manifest (saved after each: an interrupted run keeps them)."""

    def __init__(self, out_uri: str, manifest: Manifest, result: StoreResult, storage: StorageParams | None,
                 on_log: Callable[[str, str, int], None] | None) -> None:
        self.out_uri, self.manifest, self.result, self.storage, self.on_log = out_uri, manifest, result, storage, on_log
        self.pending: dict[str, tuple[str, str, str, str]] = {}  # log -> (key, content, params digest, split)

    def done(self, built: BuiltPartition) -> None:
        key, digest, params_digest, split = self.pending.pop(built.log_name)
        r, name = self.result, built.log_name
        if built.error is not None:
            r.failed[name] = built.error
            if name in self.manifest.logs:  # its old partition no longer matches the input
                delete(join_uri(self.out_uri, self.manifest.logs[name].path), self.storage)
                del self.manifest.logs[name]
                save_manifest(self.out_uri, self.manifest, self.storage)
            if self.on_log:
                self.on_log(name, "failed", 0)
            return
        self.manifest.logs[name] = PartitionEntry(
            key=key, content_digest=digest, params_digest=params_digest, split=split,
            path=partition_path(name), rows=built.rows, bytes=built.bytes, row_groups=built.row_groups,
            clipped_values=built.clipped_values, sha256=built.sha256,
        )
        save_manifest(self.out_uri, self.manifest, self.storage)
        r.written.append(name)
        r.scenes += built.rows
        r.scenes_written += built.rows
        r.bytes += built.bytes
        r.bytes_written += built.bytes
        r.clipped_values += built.clipped_values
        if self.on_log:
            self.on_log(name, "written", built.rows)
        log.info("features: %s: %d scenes in %.1fs, %.1f KB/scene", name, built.rows, built.seconds,
                 built.bytes / max(1, built.rows) / 1024)


def build_feature_store(
    scenes: Iterable[Scene] | Iterable[tuple[Scene, str]],
    sensor_blobs: str,
    out_uri: str,
    split: str,
    params: FeatureParams,
    *,
    prune: bool = True,
    storage: StorageParams | None = None,
    on_log: Callable[[str, str, int], None] | None = None,
    executor: Executor | None = None,
    total_logs: int | None = None,
) -> StoreResult:
    """Build (or reuse) one partition per log of `scenes` under out_uri (local dir or s3://).

    scenes: grouped by log (as a reader yields them log by log). Items are scenes, or (scene, image
        folder) pairs when the images live under another folder than `split` (SceneMeta.source_split).
    sensor_blobs: the `<root>/sensor_blobs` dir or URI; images are read from
        <sensor_blobs>/<image folder or split>/<data_path>.
    prune: drop partitions of this split whose log is not in the input (the cache mirrors its input).
    on_log(log_name, "written" | "reused" | "failed", n_scenes): progress callback.
    executor: where logs are built (default: params.build_workers local processes); at most 2 logs per
        worker are in memory. total_logs: for the progress bar (logs done / total).
    A log whose scenes or images are bad is reported in `failed` (and its stale partition removed); the
    others go on.
    """
    t_start = time.perf_counter()
    manifest = load_manifest(out_uri, storage)
    result = StoreResult()
    executor = executor or make_executor(workers=params.build_workers)
    bar = tqdm(total=total_logs, desc=f"features {split} [{executor.name}]", unit="log")

    def settled(name: str, state: str, n: int) -> None:  # progress: every log counts, built or not
        bar.update(1)
        if on_log:
            on_log(name, state, n)

    rec = _Recorder(out_uri, manifest, result, storage, settled)
    seen: set[str] = set()
    ambiguous: dict[str, str] = {}  # logs whose scenes came in two places: no partition can be trusted
    names: list[str] = []  # the log of each job, by position

    def jobs() -> Iterable[PartitionJob]:
        """The logs to build; reused, refused and failed logs are settled here, in the calling process."""
        for log_name, log_scenes, image_split, error in _group_by_log(scenes):
            seen.add(log_name)
            if error is not None:
                ambiguous[log_name] = error
                bar.update(1)
                continue
            try:
                uri = join_uri(out_uri, partition_path(log_name))
            except UnsafePathError as exc:
                result.failed[log_name] = f"log {shown(log_name)}: field 'log_name': {exc.reason}"
                settled(log_name, "failed", 0)
                continue
            try:
                digest = log_content_digest(log_scenes, sensor_blobs, split, params, storage, image_split)
            except Exception as exc:  # noqa: BLE001 - what this log's data provokes fails this log only
                if is_transient(exc):
                    raise
                result.failed[log_name] = log_error(log_name, exc)
                settled(log_name, "failed", 0)
                continue
            key = partition_key(digest, params)
            entry = manifest.logs.get(log_name)
            if entry is not None and entry.key == key and _partition_intact(uri, entry, storage):
                result.reused.append(log_name)
                result.scenes += entry.rows
                result.bytes += entry.bytes
                settled(log_name, "reused", entry.rows)
                continue
            rec.pending[log_name] = (key, digest, params.build_digest(), split)
            names.append(log_name)
            yield PartitionJob(log_name, log_scenes, sensor_blobs, split, image_split, params, storage, uri)

    try:
        for done in executor.map(_build, jobs(), progress=False):
            if isinstance(done.error, WorkerLostError):  # lost more often than the retries allow: this log fails
                name = names[done.index]
                rec.done(BuiltPartition(name, 0, 0, [], 0, 0.0, error=log_error(name, done.error)))
            else:
                rec.done(done.result())  # a transient store error or a failed write stops the stage, as before
    finally:
        bar.close()
    for name, error in sorted(ambiguous.items()):
        _drop_ambiguous(name, error, out_uri, manifest, result, storage)
    if prune:
        for name in sorted(n for n, e in manifest.logs.items() if e.split == split and n not in seen):
            delete(join_uri(out_uri, manifest.logs[name].path), storage)
            del manifest.logs[name]
            result.removed.append(name)
        if result.removed:
            save_manifest(out_uri, manifest, storage)
    result.written.sort()  # completion order varies with workers
    result.seconds = time.perf_counter() - t_start
    return result


def _build(_: None, job: PartitionJob) -> BuiltPartition:
    return build_partition(job)


def _drop_ambiguous(name: str, error: str, out_uri: str, manifest: Manifest, result: StoreResult,
                    storage: StorageParams | None) -> None:
    """A log seen twice: undo what its first group did in this run and report it failed."""
    entry = manifest.logs.pop(name, None)
    if entry is not None:
        delete(join_uri(out_uri, entry.path), storage)
        save_manifest(out_uri, manifest, storage)
        if name in result.written or name in result.reused:
            result.scenes -= entry.rows
            result.bytes -= entry.bytes
        if name in result.written:
            result.scenes_written -= entry.rows
            result.bytes_written -= entry.bytes
            result.clipped_values -= entry.clipped_values
    result.written = [n for n in result.written if n != name]
    result.reused = [n for n in result.reused if n != name]
    result.failed[name] = error


def _partition_intact(uri: str, entry: PartitionEntry, storage: StorageParams | None) -> bool:
    """The partition file still holds the bytes the manifest recorded: same size and same sha256 (a file
    corrupted in place keeps its size). A manifest entry without a hash is rebuilt."""
    info = stat(uri, storage)
    if info is None or info.size != entry.bytes or not entry.sha256:
        return False
    h = hashlib.sha256()
    with open_uri(uri, storage) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() == entry.sha256
