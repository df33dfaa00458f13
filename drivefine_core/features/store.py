"""The Parquet feature cache: one file per log (`log=<name>/part-0.parquet`), keyed for reuse.

A partition's key is (log content digest, feature params digest). `_manifest.json` records the key of
every partition, so a rerun rebuilds only the logs whose scenes / images or whose build params changed:
adding a log computes that log, changing the image size recomputes all of them.

The content digest covers every scene value the builder reads plus the path and size of each image it
uses (sensor blobs are named by frame token and treated as immutable: reading 100k images to hash them
would cost more than building the features).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drivefine_core.data.errors import DataFormatError
from drivefine_core.data.schema import Scene
from drivefine_core.features.arrow_schema import DICTIONARY_COLUMNS, SCALAR_COLUMNS, rows_to_table
from drivefine_core.features.builder import build_scene_features, image_uri
from drivefine_core.features.manifest import PartitionEntry, load_manifest, save_manifest
from drivefine_core.features.params import FeatureParams
from drivefine_core.storage import StorageParams, delete, join_uri, list_prefix, read_bytes, stat, write_bytes_atomic

log = logging.getLogger(__name__)
_LOG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


def partition_path(log_name: str) -> str:
    """The partition file of a log, relative to the store root."""
    return f"log={log_name}/part-0.parquet"


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
    build_seconds: float = 0.0

    @property
    def bytes_per_scene(self) -> float:
        return self.bytes / self.scenes if self.scenes else 0.0

    @property
    def scenes_per_s(self) -> float:
        return self.scenes_written / self.build_seconds if self.build_seconds > 0 else 0.0

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
            "build_seconds": round(self.build_seconds, 3),
            "scenes_per_s": round(self.scenes_per_s, 2),
        }


def _update_array(h: "hashlib._Hash", a: object) -> None:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    h.update(str(arr.shape).encode())
    h.update(arr.tobytes())


def log_content_digest(
    scenes: list[Scene],
    sensor_blobs: str,
    split: str,
    params: FeatureParams,
    storage: StorageParams | None = None,
    image_split: str | None = None,
) -> str:
    """Digest of everything the builder reads for these scenes (see the module doc for images)."""
    h = hashlib.sha256()
    h.update(f"{split}|{image_split or split}".encode())
    sizes: dict[str, int] = {}
    listed: set[str] = set()
    for scene in scenes:
        h.update(f"{scene.token}|{scene.log_name}|{scene.map_location}|{scene.num_history_frames}|{len(scene.frames)}".encode())
        for f in scene.frames:
            h.update(f"{f.token}|{f.timestamp_us}".encode())
            _update_array(h, f.ego.pose)
        cur = scene.current_frame
        _update_array(h, cur.ego.velocity)
        _update_array(h, cur.ego.acceleration)
        _update_array(h, cur.ego.driving_command)
        for cam in params.cameras:
            info = cur.cameras.get(cam)
            if info is None:
                h.update(f"{cam}:missing".encode())
                continue
            uri = image_uri(sensor_blobs, image_split or split, info.data_path)
            parent = uri.rsplit("/", 1)[0]
            if parent not in listed:  # one listing per camera directory, not one stat per image
                listed.add(parent)
                sizes.update({o.uri: o.size for o in list_prefix(parent, storage)})
            size = sizes.get(uri)
            if size is None:  # not under its parent listing (odd layout): stat it alone
                info_ = stat(uri, storage)
                size = -1 if info_ is None else info_.size
            h.update(f"{cam}|{info.data_path}|{size}".encode())
    return h.hexdigest()[:16]


def partition_key(content_digest: str, params: FeatureParams) -> str:
    return hashlib.sha256(f"{content_digest}|{params.build_digest()}".encode()).hexdigest()[:16]


def table_to_parquet_bytes(table: pa.Table, params: FeatureParams) -> bytes:
    buf = io.BytesIO()
    # Images are JPEG/PNG already: zstd on them costs CPU for nothing; everything else is zstd.
    compression = {name: ("none" if name == "images" else "zstd") for name in table.column_names}
    pq.write_table(
        table,
        buf,
        row_group_size=params.row_group_size,
        compression=compression,
        use_dictionary=DICTIONARY_COLUMNS,
        write_statistics=SCALAR_COLUMNS,
    )
    return buf.getvalue()


def _group_by_log(items: Iterable[Scene | tuple[Scene, str]]) -> Iterable[tuple[str, list[Scene], str | None]]:
    """Consecutive scenes of one log form its group: (log, scenes, image split or None).

    A log that comes back later, or whose scenes name different image folders, is an error.
    """
    seen: set[str] = set()
    pairs = ((i, None) if isinstance(i, Scene) else (i[0], i[1]) for i in items)
    for name, group in groupby(pairs, key=lambda p: p[0].log_name):
        if name in seen:
            raise ValueError(f"log {name}: field 'log_name': scenes of this log are not contiguous in the input")
        seen.add(name)
        members = list(group)
        folders = {f for _, f in members}
        if len(folders) > 1:
            raise ValueError(f"log {name}: field 'source_split': scenes name several image folders {sorted(map(str, folders))}")
        yield name, [s for s, _ in members], folders.pop()


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
) -> StoreResult:
    """Build (or reuse) one partition per log of `scenes` under out_uri (local dir or s3://).

    scenes: grouped by log (as a reader yields them log by log); only one log is held in memory. Items
        are scenes, or (scene, image folder) pairs when the images live under another folder than `split`
        (SceneMeta.source_split).
    sensor_blobs: the `<root>/sensor_blobs` dir or URI; images are read from
        <sensor_blobs>/<image folder or split>/<data_path>.
    prune: drop partitions of this split whose log is not in the input (the cache mirrors its input).
    on_log(log_name, "written" | "reused" | "failed", n_scenes): progress callback.
    A log whose scenes or images are bad is reported in `failed` (and its stale partition removed); the
    others go on.
    """
    manifest = load_manifest(out_uri, storage)
    result = StoreResult()
    seen: set[str] = set()
    t_build = 0.0
    for log_name, log_scenes, image_split in _group_by_log(scenes):
        seen.add(log_name)
        if not _LOG_NAME.match(log_name):
            result.failed[log_name] = f"log {log_name!r}: field 'log_name': not usable as a partition name"
            continue
        path = partition_path(log_name)
        uri = join_uri(out_uri, path)
        try:
            digest = log_content_digest(log_scenes, sensor_blobs, split, params, storage, image_split)
        except DataFormatError as exc:
            result.failed[log_name] = str(exc)
            continue
        key = partition_key(digest, params)
        entry = manifest.logs.get(log_name)
        if entry is not None and entry.key == key and _partition_intact(uri, entry, storage):
            result.reused.append(log_name)
            result.scenes += entry.rows
            result.bytes += entry.bytes
            if on_log:
                on_log(log_name, "reused", entry.rows)
            continue
        t0 = time.perf_counter()
        try:
            rows = [
                build_scene_features(s, sensor_blobs, split, params, lambda u: read_bytes(u, storage), image_split)
                for s in log_scenes
            ]
        except (DataFormatError, ValueError) as exc:
            result.failed[log_name] = str(exc)
            if entry is not None:  # its old partition no longer matches the input
                delete(uri, storage)
                del manifest.logs[log_name]
                save_manifest(out_uri, manifest, storage)
            if on_log:
                on_log(log_name, "failed", len(log_scenes))
            continue
        table = rows_to_table(rows, params)
        data = table_to_parquet_bytes(table, params)
        write_bytes_atomic(uri, data, storage)
        t_build += time.perf_counter() - t0
        clipped = int(sum(r.target_clipped for r in rows))
        row_groups = [params.row_group_size] * (len(rows) // params.row_group_size)
        if len(rows) % params.row_group_size:
            row_groups.append(len(rows) % params.row_group_size)
        manifest.logs[log_name] = PartitionEntry(
            key=key,
            content_digest=digest,
            params_digest=params.build_digest(),
            split=split,
            path=path,
            rows=len(rows),
            bytes=len(data),
            row_groups=row_groups,
            clipped_values=clipped,
        )
        # Saved after every log: an interrupted run keeps the logs it finished.
        save_manifest(out_uri, manifest, storage)
        result.written.append(log_name)
        result.scenes += len(rows)
        result.scenes_written += len(rows)
        result.bytes += len(data)
        result.bytes_written += len(data)
        result.clipped_values += clipped
        if on_log:
            on_log(log_name, "written", len(rows))
        log.info("features: %s: %d scenes, %.1f KB/scene", log_name, len(rows), len(data) / max(1, len(rows)) / 1024)
    if prune:
        for name in sorted(n for n, e in manifest.logs.items() if e.split == split and n not in seen):
            delete(join_uri(out_uri, manifest.logs[name].path), storage)
            del manifest.logs[name]
            result.removed.append(name)
        if result.removed:
            save_manifest(out_uri, manifest, storage)
    result.build_seconds = t_build
    return result


def _partition_intact(uri: str, entry: PartitionEntry, storage: StorageParams | None) -> bool:
    info = stat(uri, storage)
    return info is not None and info.size == entry.bytes
