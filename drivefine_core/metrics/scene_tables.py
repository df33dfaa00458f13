"""What the metric cache stage precomputes per scene for the scorer, so that scoring a scene seen for the first
time costs no more than scoring it again: the scene's index (SceneIndex.tables: polygon / centreline grids,
per-agent constants, route blocks, polygon kinds), the agents that overlap the ego at t = 0 (dropped in v2),
and the sub-metrics of the PDM-Closed reference and human rows.

`export` gives them as plain arrays (Parquet columns `pre.<name>` next to the cache's fields), already in the
compact form the queries read (grid_cells, edge_pieces: about 0.5 MB a scene, where dense int64 grids took
6 MB); `install` keeps them in the cache's runtime store, keyed like anything built lazily, so editing a field
of the cache afterwards still rebuilds them, and scene_index.scene_index wraps them without copying."""

from __future__ import annotations

import numpy as np

from drivefine_core.metrics.cache import INTERSECTION_LAYER, MetricCache
from drivefine_core.metrics.scene_index import POLYGON_INDEXES, TABLES, scene_index
from drivefine_core.metrics.scene_metrics import removed_at_start

# The reference / human rows' raw sub-metrics, one row each in this order.
FIXED_KEYS = ("v1/nc", "v1/dac", "v1/ddc", "v1/progress", "v1/ttc", "v1/c",
              "v2/nc", "v2/dac", "v2/ddc", "v2/progress", "v2/ttc", "v2/tlc", "v2/lk", "v2/hc")
# Every precomputed array, by name (an index without polygons has no words / ptr: stored empty).
NAMES = (*(f"{index}.{table}" for index in POLYGON_INDEXES
           for table in ("frame", "words", "ptr", "centre_poly", "edges", "interior")),
         *(f"centerline.{table}" for table in ("frame", "words", "ptr", "pieces")),
         "agents", "agent_flags", "poly_kind", "route_kind", "route.seg_len", "route.cum", "route.blocks",
         "removed", "fixed_rows")


def export(cache: MetricCache) -> dict[str, np.ndarray]:
    """Build (if not built yet) the precomputed parts of one scene."""
    from drivefine_core.metrics.scorer import fixed_rows  # the scorer builds on this module's callers

    out = dict(scene_index(cache).tables())
    out["removed"] = removed_at_start(cache)
    rows = fixed_rows(cache)
    out["fixed_rows"] = np.stack([rows[k] for k in FIXED_KEYS])
    return out


def _check(cache: MetricCache, pre: dict[str, np.ndarray]) -> None:
    """Cheap consistency of the tables with the scene they are installed on (a wrong file fails here, not
    as an index error while scoring)."""
    n = cache.num_agents
    n_inter = int(np.count_nonzero(cache.drivable_layers == INTERSECTION_LAYER))
    n_vertices = len(cache.drivable_vertices) + len(cache.lane_vertices)
    ok = (pre["removed"].shape == (n,) and pre["fixed_rows"].shape == (len(FIXED_KEYS), 2)
          and pre["agents"].shape == (n, 7) and pre["agent_flags"].shape == (n, 2)
          and len(pre["poly_kind"]) == len(cache.drivable_ids) + len(cache.lane_ids) + n_inter
          and len(pre["route.seg_len"]) == len(cache.centerline) - 1
          and all(pre[f"{i}.edges"].ndim == 2 and pre[f"{i}.edges"][:, :2].max(initial=0) < max(n_vertices, 1)
                  and len(pre[f"{i}.interior"]) in (0, max(len(pre[f"{i}.ptr"]) - 2, 0))
                  for i in POLYGON_INDEXES)
          and pre["centerline.pieces"][:, :2].max(initial=0) < len(cache.centerline))
    if not ok:
        raise ValueError(f"metric cache {cache.token!r}: precomputed tables do not match the scene")


def install(cache: MetricCache, pre: dict[str, np.ndarray]) -> MetricCache:
    """Seed the cache's runtime store with what `export` gave: scene_index.scene_index reads the tables as
    they are (nothing is unpacked or recomputed but the scene's shared vertex array)."""
    missing = [name for name in NAMES if name not in pre]
    if missing:
        raise ValueError(f"metric cache {cache.token!r}: precomputed tables missing {missing[:3]}")
    _check(cache, pre)
    tables = {name: arr for name, arr in pre.items() if name not in ("removed", "fixed_rows")}
    fixed = {k: pre["fixed_rows"][i].astype(np.float64) for i, k in enumerate(FIXED_KEYS)}
    cache.remember(TABLES, tables)
    cache.remember("removed", np.asarray(pre["removed"], dtype=bool))
    cache.remember("fixed_rows", fixed)
    return cache
