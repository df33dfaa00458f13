"""One log's partition: its content digest and key, and building it (runs in a worker process too).

The content digest covers every scene value the builder reads plus the path and size of each image it
uses (sensor blobs are named by frame token and treated as immutable: reading 100k images to hash them
would cost more than building the features).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drivefine_core.data.errors import DataFormatError
from drivefine_core.data.schema import Scene
from drivefine_core.features.arrow_schema import DICTIONARY_COLUMNS, SCALAR_COLUMNS, rows_to_table
from drivefine_core.features.builder import build_scene_features, image_uri
from drivefine_core.features.params import FeatureParams
from drivefine_core.storage import StorageParams, list_prefix, stat, write_bytes_atomic
from drivefine_core.storage.safe_paths import read_limited, safe_name
from drivefine_core.storage.uri import is_transient


def partition_path(log_name: str) -> str:
    """The partition file of a log, relative to the store root (UnsafePathError unless a plain name)."""
    return f"log={safe_name(log_name, 'log_name')}/part-0.parquet"


def _update_array(h: Any, a: object) -> None:
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
                found = stat(uri, storage)
                size = -1 if found is None else found.size
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


@dataclass
class PartitionJob:
    """Everything needed to build one log's partition; picklable, so it can go to a worker process."""

    log_name: str
    scenes: list[Scene]
    sensor_blobs: str
    split: str
    image_split: str | None
    params: FeatureParams
    storage: StorageParams | None
    uri: str  # where the partition file goes


@dataclass
class BuiltPartition:
    log_name: str
    rows: int
    bytes: int
    row_groups: list[int]
    clipped_values: int
    seconds: float
    error: str | None = None  # bad input: nothing was written
    sha256: str = ""  # of the file written


def log_error(log_name: str, exc: BaseException) -> str:
    """The message a failed log is reported with: always names the log."""
    text = str(exc) if isinstance(exc, DataFormatError) else f"{type(exc).__name__}: {exc}"
    text = text if len(text) <= 2000 else text[:2000] + "..."
    return text if log_name in text else f"log {log_name}: {text}"


def build_partition(job: PartitionJob) -> BuiltPartition:
    """Build and write one partition (atomically). Anything in the log's scenes or images that makes
    building fail gives `error` (naming the log), not an exception; a store that does not answer, or a
    failed write, still raises."""
    t0 = time.perf_counter()
    try:
        rows = [
            build_scene_features(
                s, job.sensor_blobs, job.split, job.params,
                lambda u: read_limited(u, job.params.max_source_image_bytes, job.storage), job.image_split,
            )
            for s in job.scenes
        ]
        table = rows_to_table(rows, job.params)
        data = table_to_parquet_bytes(table, job.params)
    except Exception as exc:  # noqa: BLE001 - whatever this log's data provokes fails this log only
        if is_transient(exc):
            raise
        return BuiltPartition(job.log_name, 0, 0, [], 0, time.perf_counter() - t0, error=log_error(job.log_name, exc))
    write_bytes_atomic(job.uri, data, job.storage)
    size = job.params.row_group_size
    row_groups = [size] * (len(rows) // size) + ([len(rows) % size] if len(rows) % size else [])
    clipped = int(sum(r.target_clipped for r in rows))
    return BuiltPartition(job.log_name, len(rows), len(data), row_groups, clipped, time.perf_counter() - t0,
                          sha256=hashlib.sha256(data).hexdigest())
