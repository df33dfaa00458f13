"""Scenes Parquet: one row per scene, explicit schema (scenes_arrow.SCENE_SCHEMA), exact round trip.

Images are stored by reference (relative data paths) with their calibration. Every frame of a scene is
stored in its row, so overlapping windows repeat frames: simple to read, and Parquet compresses it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from drivefine_core.data.errors import DataFormatError
from drivefine_core.data.scenes_arrow import (
    SCENE_SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    scenes_from_batch,
    scenes_table,
)
from drivefine_core.data.schema import Scene

__all__ = [
    "SCENE_SCHEMA",
    "SCHEMA_VERSION",
    "INDEX_COLUMNS",
    "SceneMeta",
    "ScenesWriter",
    "write_scenes",
    "read_scenes",
    "read_scenes_with_meta",
    "read_scene_index",
]

INDEX_COLUMNS = ["token", "log_name", "map_location", "split", "source_split", "num_history_frames"]


@dataclass(frozen=True)
class SceneMeta:
    split: str
    source_split: str  # images: <sensor_blobs>/<source_split>/<camera data_path>


class ScenesWriter:
    """Streams scenes into one Parquet file; the file appears (atomically) only on a clean close."""

    def __init__(self, path: str | Path, row_group_scenes: int = 256) -> None:
        self.path = Path(path)
        self.row_group_scenes = row_group_scenes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer = pq.ParquetWriter(self._tmp, SCENE_SCHEMA, compression="zstd")
        self._pending: list[tuple[Scene, str, str]] = []
        self.count = 0

    def write(self, scenes: Iterable[Scene], split: str, source_split: str = "") -> None:
        for scene in scenes:
            self._pending.append((scene, split, source_split))
            self.count += 1
            if len(self._pending) >= self.row_group_scenes:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        tables, start = [], 0
        for i in range(1, len(self._pending) + 1):  # one conversion per run of equal (split, source)
            if i == len(self._pending) or self._pending[i][1:] != self._pending[start][1:]:
                _, split, source = self._pending[start]
                tables.append(scenes_table([s for s, _, _ in self._pending[start:i]], split, source))
                start = i
        self._writer.write_table(pa.concat_tables(tables))
        self._pending = []

    def close(self) -> Path:
        self._flush()
        self._writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ScenesWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_scenes(
    scenes: Iterable[Scene], path: str | Path, split: str = "", row_group_scenes: int = 256, source_split: str = ""
) -> Path:
    """Write scenes to one Parquet file (atomic). `split` and `source_split` are stored per row."""
    with ScenesWriter(path, row_group_scenes) as writer:
        writer.write(scenes, split, source_split)
    return Path(path)


def _check_version(path: Path, schema: pa.Schema) -> None:
    version = (schema.metadata or {}).get(SCHEMA_VERSION_KEY)
    if version is None:
        raise DataFormatError(str(path), "schema_version", "not a drivefine scenes file (no schema version)")
    if int(version) != SCHEMA_VERSION:
        raise DataFormatError(str(path), "schema_version", f"version {int(version)}, this reader reads {SCHEMA_VERSION}")


def read_scenes_with_meta(path: str | Path, batch_size: int = 256) -> Iterator[tuple[Scene, SceneMeta]]:
    """Like read_scenes, with each scene's split and source folder."""
    path = Path(path)
    parquet = pq.ParquetFile(path)
    _check_version(path, parquet.schema_arrow)
    for batch in parquet.iter_batches(batch_size=batch_size):
        for scene, split, source in scenes_from_batch(batch):
            yield scene, SceneMeta(split, source)


def read_scenes(path: str | Path, batch_size: int = 256) -> Iterator[Scene]:
    """Yield the scenes of one file in order, batch by batch (memory stays bounded)."""
    for scene, _ in read_scenes_with_meta(path, batch_size):
        yield scene


def read_scene_index(path: str | Path) -> pa.Table:
    """The per-scene id columns only (token, log, map, split, source folder, history length): cheap to read."""
    path = Path(path)
    _check_version(path, pq.read_schema(path))
    return pq.read_table(path, columns=INDEX_COLUMNS)
