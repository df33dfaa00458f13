"""What the metric cache stage precomputes per scene for the scorer, so that scoring a scene seen for the first
time costs no more than scoring it again: the polygon / centreline grids (SceneIndex.tables), the agents that
overlap the ego at t = 0 (dropped in v2), and the sub-metrics of the PDM-Closed reference and human rows.

`export` packs them into plain arrays (Parquet columns `pre.<name>` next to the cache's fields; CSR row pointers
as small deltas, indices in the narrowest integer type); `install` keeps them packed in the cache's runtime store,
keyed like anything built lazily, so editing a field of the cache afterwards still rebuilds them. The grids are
unpacked when the scene is scored (scene_index.scene_index): unpacked they take about 6 MB a scene, packed a
tenth of that, and training holds thousands of scenes."""

from __future__ import annotations

import numpy as np

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.scene_index import PACKED, scene_index
from drivefine_core.metrics.scene_metrics import removed_at_start

# The reference / human rows' raw sub-metrics, one row each in this order.
FIXED_KEYS = ("v1/nc", "v1/dac", "v1/ddc", "v1/progress", "v1/ttc", "v1/c",
              "v2/nc", "v2/dac", "v2/ddc", "v2/progress", "v2/ttc", "v2/tlc", "v2/lk", "v2/hc")


def _narrow(a: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds them (they compress far better)."""
    top = int(a.max()) if a.size else 0
    for t in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(t).max:
            return a.astype(t)
    return a.astype(np.int64)


def export(cache: MetricCache) -> dict[str, np.ndarray]:
    """Build (if not built yet) and pack the precomputed parts of one scene."""
    from drivefine_core.metrics.scorer import fixed_rows  # the scorer builds on this module's callers

    out: dict[str, np.ndarray] = {}
    for name, arr in scene_index(cache).tables().items():
        out[name] = _narrow(np.diff(arr)) if name.endswith("ptr") else _narrow(arr)
    out["removed"] = removed_at_start(cache)
    rows = fixed_rows(cache)
    out["fixed_rows"] = np.stack([rows[k] for k in FIXED_KEYS])
    return out


def install(cache: MetricCache, packed: dict[str, np.ndarray]) -> MetricCache:
    """Seed the cache's runtime store with what `export` packed: the grids stay packed until scoring needs
    them (scene_index.scene_index unpacks them, nothing is recomputed but cheap constants)."""
    tables = {name: arr for name, arr in packed.items() if name not in ("removed", "fixed_rows")}
    removed = np.asarray(packed["removed"], dtype=bool)
    if removed.shape != (cache.num_agents,) or packed["fixed_rows"].shape != (len(FIXED_KEYS), 2):
        raise ValueError(f"metric cache {cache.token!r}: precomputed tables do not match the scene")
    fixed = {k: packed["fixed_rows"][i].astype(np.float64) for i, k in enumerate(FIXED_KEYS)}
    cache.remember(PACKED, tables)
    cache.remember("removed", removed)
    cache.remember("fixed_rows", fixed)
    return cache
