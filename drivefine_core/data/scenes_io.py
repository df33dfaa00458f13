"""Scenes Parquet: one row per scene, explicit schema, exact round trip to schema.Scene.

Images are stored by reference (relative data paths) with their calibration. Every frame of a scene is
stored in the row, so overlapping windows repeat frames: simple to read, and Parquet compresses it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drivefine_core.data.errors import DataFormatError
from drivefine_core.data.schema import Annotations, CameraInfo, EgoStatus, Frame, Scene

SCHEMA_VERSION = 1
SCHEMA_VERSION_KEY = b"drivefine.scenes.schema_version"


def _vec(n: int) -> pa.DataType:
    return pa.list_(pa.float64(), n)


CAMERA_TYPE = pa.struct(
    [
        ("name", pa.string()),
        ("data_path", pa.string()),
        ("intrinsic", _vec(9)),
        ("sensor2lidar_rotation", _vec(9)),
        ("sensor2lidar_translation", _vec(3)),
        ("distortion", pa.list_(pa.float64())),
    ]
)
ANNOTATIONS_TYPE = pa.struct(
    [
        ("boxes", pa.list_(_vec(7))),
        ("names", pa.list_(pa.string())),
        ("velocity_3d", pa.list_(_vec(3))),
        ("track_tokens", pa.list_(pa.string())),
    ]
)
TRAFFIC_LIGHT_TYPE = pa.struct([("lane_connector_id", pa.string()), ("is_red", pa.bool_())])
FRAME_TYPE = pa.struct(
    [
        ("token", pa.string()),
        ("timestamp_us", pa.int64()),
        ("pose", _vec(3)),  # global [x, y, heading]
        ("velocity", _vec(2)),
        ("acceleration", _vec(2)),
        ("driving_command", pa.list_(pa.int64(), 4)),
        ("roadblock_ids", pa.list_(pa.string())),
        ("traffic_lights", pa.list_(TRAFFIC_LIGHT_TYPE)),
        ("annotations", ANNOTATIONS_TYPE),
        ("cameras", pa.list_(CAMERA_TYPE)),
        ("lidar2ego", _vec(16)),
    ]
)
SCENE_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("token", pa.string()),
        ("log_name", pa.string()),
        ("map_location", pa.string()),
        ("split", pa.string()),  # the assigned split (train / test / ...)
        ("source_split", pa.string()),  # the navsim_logs/<folder> it came from; sensor blobs live under it
        ("num_history_frames", pa.int32()),
        ("frames", pa.list_(FRAME_TYPE)),
    ],
    metadata={SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
INDEX_COLUMNS = ["token", "log_name", "map_location", "split", "source_split", "num_history_frames"]


def _flat(a: np.ndarray) -> list[float]:
    return np.asarray(a, dtype=np.float64).reshape(-1).tolist()


def _frame_row(f: Frame) -> dict[str, Any]:
    a = f.annotations
    return {
        "token": f.token,
        "timestamp_us": int(f.timestamp_us),
        "pose": _flat(f.ego.pose),
        "velocity": _flat(f.ego.velocity),
        "acceleration": _flat(f.ego.acceleration),
        "driving_command": np.asarray(f.ego.driving_command, dtype=np.int64).tolist(),
        "roadblock_ids": list(f.roadblock_ids),
        "traffic_lights": [{"lane_connector_id": i, "is_red": bool(r)} for i, r in f.traffic_lights],
        "annotations": {
            "boxes": np.asarray(a.boxes, dtype=np.float64).reshape(-1, 7).tolist(),
            "names": list(a.names),
            "velocity_3d": np.asarray(a.velocity_3d, dtype=np.float64).reshape(-1, 3).tolist(),
            "track_tokens": list(a.track_tokens),
        },
        "cameras": [
            {
                "name": name,
                "data_path": c.data_path,
                "intrinsic": _flat(c.intrinsic),
                "sensor2lidar_rotation": _flat(c.sensor2lidar_rotation),
                "sensor2lidar_translation": _flat(c.sensor2lidar_translation),
                "distortion": _flat(c.distortion),
            }
            for name, c in f.cameras.items()
        ],
        "lidar2ego": _flat(f.lidar2ego),
    }


def scene_row(scene: Scene, split: str, source_split: str = "") -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "token": scene.token,
        "log_name": scene.log_name,
        "map_location": scene.map_location,
        "split": split,
        "source_split": source_split,
        "num_history_frames": scene.num_history_frames,
        "frames": [_frame_row(f) for f in scene.frames],
    }


def _array(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    return np.array(values, dtype=np.float64).reshape(shape)


def _frame_from_row(r: dict[str, Any]) -> Frame:
    a = r["annotations"]
    return Frame(
        token=r["token"],
        timestamp_us=int(r["timestamp_us"]),
        ego=EgoStatus(
            pose=_array(r["pose"], (3,)),
            velocity=_array(r["velocity"], (2,)),
            acceleration=_array(r["acceleration"], (2,)),
            driving_command=np.array(r["driving_command"], dtype=np.int64),
        ),
        annotations=Annotations(
            boxes=_array(a["boxes"], (-1, 7)),
            names=list(a["names"]),
            velocity_3d=_array(a["velocity_3d"], (-1, 3)),
            track_tokens=list(a["track_tokens"]),
        ),
        traffic_lights=[(t["lane_connector_id"], bool(t["is_red"])) for t in r["traffic_lights"]],
        roadblock_ids=list(r["roadblock_ids"]),
        cameras={
            c["name"]: CameraInfo(
                data_path=c["data_path"],
                intrinsic=_array(c["intrinsic"], (3, 3)),
                sensor2lidar_rotation=_array(c["sensor2lidar_rotation"], (3, 3)),
                sensor2lidar_translation=_array(c["sensor2lidar_translation"], (3,)),
                distortion=_array(c["distortion"], (-1,)),
            )
            for c in r["cameras"]
        },
        lidar2ego=_array(r["lidar2ego"], (4, 4)),
    )


def scene_from_row(row: dict[str, Any]) -> Scene:
    return Scene(
        token=row["token"],
        log_name=row["log_name"],
        map_location=row["map_location"],
        frames=[_frame_from_row(f) for f in row["frames"]],
        num_history_frames=int(row["num_history_frames"]),
    )


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
        self._pending: list[dict[str, Any]] = []
        self.count = 0

    def write(self, scenes: Iterable[Scene], split: str, source_split: str = "") -> None:
        for scene in scenes:
            self._pending.append(scene_row(scene, split, source_split))
            self.count += 1
            if len(self._pending) >= self.row_group_scenes:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_pylist(self._pending, schema=SCENE_SCHEMA))
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
    meta = schema.metadata or {}
    version = meta.get(SCHEMA_VERSION_KEY)
    if version is None:
        raise DataFormatError(str(path), "schema_version", "not a drivefine scenes file (no schema version)")
    if int(version) != SCHEMA_VERSION:
        raise DataFormatError(str(path), "schema_version", f"version {int(version)}, this reader reads {SCHEMA_VERSION}")


@dataclass(frozen=True)
class SceneMeta:
    split: str
    source_split: str  # images: <sensor_blobs>/<source_split>/<camera data_path>


def read_scenes_with_meta(path: str | Path, batch_size: int = 64) -> Iterator[tuple[Scene, SceneMeta]]:
    """Like read_scenes, with each scene's split and source folder."""
    path = Path(path)
    parquet = pq.ParquetFile(path)
    _check_version(path, parquet.schema_arrow)
    for batch in parquet.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield scene_from_row(row), SceneMeta(row["split"], row["source_split"])


def read_scenes(path: str | Path, batch_size: int = 64) -> Iterator[Scene]:
    """Yield the scenes of one file in order, batch by batch (memory stays bounded)."""
    for scene, _ in read_scenes_with_meta(path, batch_size):
        yield scene


def read_scene_index(path: str | Path) -> pa.Table:
    """The per-scene id columns only (token, log, map, split, history length): cheap to read."""
    path = Path(path)
    _check_version(path, pq.read_schema(path))
    return pq.read_table(path, columns=INDEX_COLUMNS)
