"""Library side of the metric_cache stage for navhard: stage-2 caches of one split under
data/metric_cache/navhard/<split>/ (one Parquet file per log, incremental like the split caches) and
groups.json naming, per stage-1 scene, its EC pair and its synthetic stage-2 scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from drivefine_core.data.schema import Scene
from drivefine_core.metrics.cache_stage import CacheStageReport, build_metric_cache_dir
from drivefine_core.metrics.navhard_groups import GROUPS_FILE, build_groups, groups_json
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.storage.local import write_file_atomic


def build_navhard_dir(scenes: Iterable[Scene], maps_root: str | Path, out_dir: str | Path, params: MetricsParams,
                      maps_digest: str = "") -> tuple[CacheStageReport, int]:
    """-> (the cache report of the synthetic scenes, the number of groups written)."""
    synthetic, groups = build_groups(scenes, params.navhard)
    out = Path(out_dir)
    report = build_metric_cache_dir(synthetic, maps_root, out, params, maps_digest=maps_digest, is_synthetic=True)
    write_file_atomic(out / GROUPS_FILE, groups_json(groups))
    return report, len(groups)
