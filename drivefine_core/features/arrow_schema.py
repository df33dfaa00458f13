"""The explicit pyarrow schema of a feature partition, and SceneFeatures rows <-> Arrow tables."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pyarrow as pa

from drivefine_core.features.builder import SceneFeatures
from drivefine_core.features.params import SCHEMA_VERSION, FeatureParams

METADATA_KEY = b"drivefine.features"
# Columns small enough to be worth statistics / dictionaries; images are neither.
SCALAR_COLUMNS = ["token", "log_name", "split", "map_location", "timestamp_us", "target_clipped"]
DICTIONARY_COLUMNS = ["log_name", "split", "map_location"]


def feature_schema(params: FeatureParams) -> pa.Schema:
    n_views = len(params.cameras)
    fields = [
        pa.field("token", pa.string(), nullable=False),
        pa.field("log_name", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("map_location", pa.string(), nullable=False),
        pa.field("timestamp_us", pa.int64(), nullable=False),
        pa.field("images", pa.list_(pa.binary(), n_views), nullable=False),
        pa.field("velocity", pa.list_(pa.float32(), 2), nullable=False),
        pa.field("acceleration", pa.list_(pa.float32(), 2), nullable=False),
        pa.field("history", pa.list_(pa.float32(), 12), nullable=False),  # (4, 3) row-major
        pa.field("command", pa.list_(pa.int8(), 4), nullable=False),
        pa.field("target", pa.list_(pa.float32(), 24), nullable=False),  # (8, 3) row-major
        pa.field("target_tokens", pa.list_(pa.int16(), 24), nullable=False),
        pa.field("target_clipped", pa.int16(), nullable=False),
    ]
    meta = {
        "schema_version": SCHEMA_VERSION,
        "cameras": list(params.cameras),
        "image_format": params.image_format,
        "image_width": params.image_width,
        "image_height": params.image_height,
        "params_digest": params.build_digest(),
    }
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(meta).encode(), b"schema_version": str(SCHEMA_VERSION).encode()})


def read_metadata(schema: pa.Schema, source: str) -> dict[str, object]:
    """The drivefine metadata of a partition's schema; errors name the file."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{source}: not a drivefine feature file (no '{METADATA_KEY.decode()}' schema metadata)")
    meta = json.loads(raw)
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{source}: field 'schema_version' is {meta.get('schema_version')}, this code reads {SCHEMA_VERSION}; "
            "rebuild the feature cache"
        )
    return meta


def _fixed(values: np.ndarray, width: int, type_: pa.DataType) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=type_)
    return pa.FixedSizeListArray.from_arrays(flat, width)


def rows_to_table(rows: Sequence[SceneFeatures], params: FeatureParams) -> pa.Table:
    schema = feature_schema(params)
    n = len(rows)
    n_views = len(params.cameras)
    for r in rows:
        if len(r.images) != n_views:
            raise ValueError(f"log {r.log_name}: scene {r.token}: field 'images' has {len(r.images)} views, expected {n_views}")
    images = pa.FixedSizeListArray.from_arrays(pa.array([b for r in rows for b in r.images], type=pa.binary()), n_views)

    def stack(attr: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        if n == 0:
            return np.zeros((0, *shape), dtype=dtype)
        return np.stack([np.asarray(getattr(r, attr), dtype=dtype).reshape(shape) for r in rows])

    columns = [
        pa.array([r.token for r in rows], pa.string()),
        pa.array([r.log_name for r in rows], pa.string()),
        pa.array([r.split for r in rows], pa.string()),
        pa.array([r.map_location for r in rows], pa.string()),
        pa.array([r.timestamp_us for r in rows], pa.int64()),
        images,
        _fixed(stack("velocity", (2,), np.float32), 2, pa.float32()),
        _fixed(stack("acceleration", (2,), np.float32), 2, pa.float32()),
        _fixed(stack("history", (12,), np.float32), 12, pa.float32()),
        _fixed(stack("command", (4,), np.int8), 4, pa.int8()),
        _fixed(stack("target", (24,), np.float32), 24, pa.float32()),
        _fixed(stack("target_tokens", (24,), np.int16), 24, pa.int16()),
        pa.array([r.target_clipped for r in rows], pa.int16()),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def fixed_list_to_numpy(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...]) -> np.ndarray:
    """A fixed-size-list column as an (n, *shape) numpy array without a Python loop."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(n, *shape)
