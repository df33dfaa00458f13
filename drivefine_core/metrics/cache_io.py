"""Parquet serialisation of MetricCaches: one file per log (<dir>/<log_name>.parquet), one row per scene.

Arrays are stored as raw little-endian bytes with their dtype and shape, so a reader never depends on
pickle and a broken file fails loudly (naming the file, scene and field) instead of silently going wrong.
Writing is incremental: only the logs present in `caches` are (re)written, each atomically.
Next to the fields, columns `pre.<name>` hold what the scorer needs precomputed per scene
(metrics.scene_tables). Files of format 1 have none and are scored after a lazy build; files of formats 2 and 3
hold those tables in older layouts and are refused (the metric_cache stage rebuilds them: RULES_VERSION 6).
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import fields
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drivefine_core.metrics import scene_tables
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.scene_index import SHARED_VERTICES
from drivefine_core.storage.safe_paths import safe_name

# 2: the scorer's precomputed tables (pre.* columns); 3: those tables in the form the queries read as they are
# (grids over the occupied cells, named edge pieces, the whole scene index); 4: the drivable grid's cells inside
# the union of the drivable polygons (PolygonIndex.interior)
_FORMAT_VERSION = 4
_READABLE = ("1", str(_FORMAT_VERSION))  # 1: no precomputed tables (built lazily)
_META = b"drivefine_metric_cache"
PRE_NAMES = scene_tables.NAMES
_NONE = np.zeros(0, dtype=np.uint8)


def _kinds() -> dict[str, str]:
    out = {}
    for f in fields(MetricCache):
        if f.name.startswith("_"):
            continue
        out[f.name] = {"np.ndarray": "array", "list[str]": "strings"}.get(str(f.type), str(f.type))
    return out


def log_file(root: Path, log_name: str) -> Path:
    """<root>/<log_name>.parquet; UnsafePathError (a ValueError) unless log_name is a plain file name."""
    return root / f"{safe_name(log_name, 'metric cache: log_name')}.parquet"


def _put_array(cols: dict[str, list], name: str, value: np.ndarray) -> None:
    arr = np.ascontiguousarray(value)
    cols[name].append(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    cols[f"{name}__dtype"].append(arr.dtype.newbyteorder("<").str)
    cols[f"{name}__shape"].append(list(arr.shape))


def _get_array(row: dict, name: str, out: np.ndarray | None = None) -> np.ndarray:
    dtype = np.dtype(row[f"{name}__dtype"])
    shape = tuple(int(s) for s in row[f"{name}__shape"])
    raw = np.frombuffer(row[name], dtype=dtype).reshape(shape)
    if out is None:
        return raw.astype(dtype.newbyteorder("="), copy=True)
    out[...] = raw
    return out


_VERTEX_FIELDS = ("drivable_vertices", "lane_vertices")


def _joint_vertices(row: dict) -> np.ndarray | None:
    """The drivable and lane vertices decoded back to back into one (V, 2) array (the scorer's shared vertex
    array, scene_index); None when they are not both (N, 2) float64 (the field checks then name the problem)."""
    try:
        shapes = [tuple(int(x) for x in row[f"{name}__shape"]) for name in _VERTEX_FIELDS]
        if any(len(sh) != 2 or sh[1] != 2 or np.dtype(row[f"{name}__dtype"]) != np.dtype("<f8")
               for name, sh in zip(_VERTEX_FIELDS, shapes)):
            return None
        joint = np.empty((shapes[0][0] + shapes[1][0], 2))
        _get_array(row, _VERTEX_FIELDS[0], joint[: shapes[0][0]])
        _get_array(row, _VERTEX_FIELDS[1], joint[shapes[0][0] :])
        return joint
    except (KeyError, TypeError, ValueError):
        return None


def _to_table(caches: list[MetricCache]) -> pa.Table:
    cols: dict[str, list] = defaultdict(list)
    for c in caches:
        pre = scene_tables.export(c)
        for name in PRE_NAMES:
            _put_array(cols, f"pre.{name}", pre.get(name, _NONE))
        for name, kind in _kinds().items():
            value = getattr(c, name)
            if kind == "array":
                _put_array(cols, name, value)
            elif kind == "strings":
                cols[name].append(list(value))
            else:
                cols[name].append(value)
    table = pa.table(dict(cols))
    return table.replace_schema_metadata({_META: str(_FORMAT_VERSION).encode()})


def write_metric_caches(caches: Iterable[MetricCache], path: str | os.PathLike) -> list[Path]:
    """Write caches grouped by log, one Parquet file per log under `path`; returns the files written."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    by_log: dict[str, list[MetricCache]] = defaultdict(list)
    for c in caches:
        by_log[c.log_name].append(c.validate())
    written = []
    for log_name, group in sorted(by_log.items()):
        group.sort(key=lambda c: c.timestamp_us)
        target = log_file(root, log_name)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=root)
        os.close(fd)
        try:
            # zstd: the narrow index tables compress ~25% smaller than with snappy and decode faster
            pq.write_table(_to_table(group), tmp, compression="zstd")
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(target)
    return written


def _row_to_cache(row: dict, source: str) -> MetricCache:
    kwargs = {}
    token = row.get("token", "?")
    joint = _joint_vertices(row)
    if joint is not None:
        n = len(joint) - int(row["lane_vertices__shape"][0])
        kwargs.update(drivable_vertices=joint[:n], lane_vertices=joint[n:])
    for name, kind in _kinds().items():
        if name not in row:
            raise ValueError(f"{source}: metric cache {token!r}: missing field {name!r}")
        value = row[name]
        if name in kwargs:
            continue
        if kind == "array":
            try:
                kwargs[name] = _get_array(row, name)
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{source}: metric cache {token!r} field {name!r}: unreadable array ({e})") from e
        elif kind == "strings":
            kwargs[name] = [str(s) for s in value]
        else:
            kwargs[name] = value
    cache = MetricCache(**kwargs).validate(source)
    if joint is not None:
        cache.remember(SHARED_VERTICES, joint)
    if "pre.fixed_rows" in row:
        try:
            scene_tables.install(cache, {name: _get_array(row, f"pre.{name}") for name in PRE_NAMES})
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{source}: metric cache {token!r}: unreadable precomputed tables ({e})") from e
    return cache


def read_metric_caches(path: str | os.PathLike, logs: Iterable[str] | None = None, *,
                       scorer_tables: bool = True) -> list[MetricCache]:
    """Read every log file under `path` (or only `logs`), ordered by log then timestamp.
    scorer_tables=False leaves the precomputed `pre.*` columns unread (about two thirds of a file): for readers
    of the scene's fields only (BEV targets, the ego-MLP's fit); scoring such a cache builds its tables lazily."""
    root = Path(path)
    if logs is None:
        files = sorted(root.glob("*.parquet"))
    else:
        files = [log_file(root, name) for name in logs]
    out: list[MetricCache] = []
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"metric cache file {f} does not exist")
        try:
            columns = None if scorer_tables else [n for n in pq.read_schema(f).names if not n.startswith("pre.")]
            table = pq.read_table(f, columns=columns)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise ValueError(f"{f}: not a readable Parquet metric cache ({e})") from e
        version = (table.schema.metadata or {}).get(_META, b"1").decode()
        if version not in _READABLE:
            raise ValueError(f"{f}: metric cache format {version}, this code reads formats {', '.join(_READABLE)}; "
                             "rebuild it with the metric_cache stage (dvc repro metric_cache)")
        for row in table.to_pylist():
            out.append(_row_to_cache(row, str(f)))
    return out
