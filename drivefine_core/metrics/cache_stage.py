"""Library side of the metric_cache stage: scenes in, one Parquet file of MetricCaches per log out.

Incremental: logs whose cache file already exists are skipped unless `overwrite`. A scene that cannot be
cached (bad route, broken map) is reported with its reason and the rest go on; nothing is written for a
log until all its scenes are processed, so a crash never leaves half a log behind."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from drivefine_core.data.map_api import load_map_api
from drivefine_core.data.schema import Scene
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.cache_builder import build_metric_cache
from drivefine_core.metrics.cache_io import write_metric_caches
from drivefine_core.metrics.params import MetricsParams


@dataclass
class CacheStageReport:
    scenes: int = 0
    logs_written: list[str] = field(default_factory=list)
    logs_skipped: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # {"log", "token", "error"}
    seconds: float = 0.0

    @property
    def scenes_per_second(self) -> float:
        return self.scenes / self.seconds if self.seconds > 0 else 0.0


def build_metric_cache_dir(scenes: Iterable[Scene], maps_root: str | Path, out_dir: str | Path,
                           params: MetricsParams | None = None, overwrite: bool = False,
                           progress: Callable[[CacheStageReport], None] | None = None) -> CacheStageReport:
    """Scenes must come grouped by log (as read_scenes yields them)."""
    params = params or MetricsParams()
    out = Path(out_dir)
    report = CacheStageReport()
    start = time.perf_counter()
    current: str | None = None
    batch: list[MetricCache] = []

    def flush() -> None:
        if current is not None and batch:
            write_metric_caches(batch, out)
            report.logs_written.append(current)
        batch.clear()

    for scene in scenes:
        if scene.log_name != current:
            flush()
            current = scene.log_name
        if not overwrite and (out / f"{scene.log_name}.parquet").exists():
            if not report.logs_skipped or report.logs_skipped[-1] != scene.log_name:
                report.logs_skipped.append(scene.log_name)
            continue
        try:
            batch.append(build_metric_cache(scene, load_map_api(maps_root, scene.map_location), params))
            report.scenes += 1
        except (ValueError, KeyError, FileNotFoundError) as e:
            report.failures.append({"log": scene.log_name, "token": scene.token, "error": str(e)})
        report.seconds = time.perf_counter() - start
        if progress is not None:
            progress(report)
    flush()
    report.seconds = time.perf_counter() - start
    return report
