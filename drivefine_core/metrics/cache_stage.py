"""Library side of the metric_cache stage: scenes in, one Parquet file of MetricCaches per log out.

Incremental by content: each log's key (its scenes, the maps, the metrics params) is kept in
`manifest.json`; a log is rebuilt only when its key changed, and logs no longer in the input are
removed. A scene that cannot be cached (bad route, broken map) is reported with its reason and the rest
go on; nothing is written for a log until all its scenes are processed, so a crash never leaves half a
log behind."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from drivefine_core.data.map_api import load_map_api
from drivefine_core.data.schema import Scene
from drivefine_core.executor.core import Executor, WorkerLostError, make_executor
from drivefine_core.metrics.cache_builder import build_metric_cache
from drivefine_core.metrics.cache_io import log_file, write_metric_caches
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.storage.local import write_file_atomic
from drivefine_core.storage.safe_paths import UnsafePathError

MANIFEST = "manifest.json"
# Part of every log's key: bump it whenever a rule that changes what a cache holds changes (route centreline,
# PDM-Closed, agents), so that caches built by earlier code are rebuilt instead of reused.
RULES_VERSION = ("6: lane joints kept, NAVSIM batch-LQR velocity fit, PDM-Closed sees current detections only, "
                 "the scorer's per-scene tables precomputed in the form its queries read, with the drivable "
                 "union's interior cells (cache file format 4)")


class NothingBuiltError(RuntimeError):
    """A non-empty input from which no cache could be built; nothing was changed on disk."""


@dataclass
class CacheStageReport:
    scenes: int = 0
    logs_written: list[str] = field(default_factory=list)
    logs_skipped: list[str] = field(default_factory=list)
    logs_removed: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # {"log", "token", "error"}
    seconds: float = 0.0

    @property
    def scenes_per_second(self) -> float:
        return self.scenes / self.seconds if self.seconds > 0 else 0.0


def log_key(scenes: list[Scene], params: MetricsParams, maps_digest: str) -> str:
    """What a log's caches depend on: its scenes' states, annotations, lights, routes; maps; params."""
    h = hashlib.sha256(params.model_dump_json().encode() + maps_digest.encode() + RULES_VERSION.encode())
    for s in scenes:
        h.update(s.token.encode())
        for f in s.frames:
            h.update(np.ascontiguousarray(f.ego.pose, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(f.ego.velocity, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(f.annotations.boxes, dtype=np.float64).tobytes())
            h.update(repr((f.traffic_lights, f.roadblock_ids, f.annotations.track_tokens)).encode())
    return h.hexdigest()


def _save_manifest(out: Path, manifest: dict[str, str]) -> None:
    write_file_atomic(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())


def _build_log(shared: tuple[str, Path, MetricsParams, bool], log_scenes: list[Scene]) -> tuple[int, list[dict]]:
    """One log's caches, written as one file (atomically) once every scene is done: (scenes cached, failures).
    Runs on the executor's workers."""
    maps_root, out, params, is_synthetic = shared
    caches, failures = [], []
    for scene in log_scenes:
        try:
            caches.append(build_metric_cache(scene, load_map_api(maps_root, scene.map_location), params,
                                             is_synthetic=is_synthetic))
        except (ValueError, KeyError, FileNotFoundError) as e:
            failures.append({"log": scene.log_name, "token": scene.token, "error": str(e)})
    if caches:
        write_metric_caches(caches, out)
    return len(caches), failures


def build_metric_cache_dir(scenes: Iterable[Scene], maps_root: str | Path, out_dir: str | Path,
                           params: MetricsParams | None = None, overwrite: bool = False,
                           progress: Callable[[CacheStageReport], None] | None = None,
                           maps_digest: str = "", prune: bool = True, executor: Executor | None = None,
                           total_logs: int | None = None, is_synthetic: bool = False) -> CacheStageReport:
    """Scenes must come grouped by log (as read_scenes yields them). Logs are built on `executor` (default:
    this process); `progress(report)` after each log built, and a bar of logs done / `total_logs`.
    is_synthetic: navhard stage-2 scenes."""
    params = params or MetricsParams()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, str] = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else {}
    report = CacheStageReport()
    start = time.perf_counter()
    seen: set[str] = set()
    emptied: list[str] = []
    executor = executor or make_executor()
    bar = tqdm(total=total_logs, desc=f"metric cache {out.name} [{executor.name}]", unit="log")
    jobs: list[tuple[str, str]] = []  # (log, key) of each log sent to the executor, by position

    def to_build() -> Iterator[list[Scene]]:
        for log_name, group in groupby(scenes, key=lambda s: s.log_name):
            log_scenes = list(group)
            seen.add(log_name)
            try:
                target = log_file(out, log_name)
            except UnsafePathError as exc:  # never a path outside out_dir: the log is refused, nothing touched
                report.failures.extend({"log": log_name, "token": s.token, "error": str(exc)} for s in log_scenes)
                bar.update(1)
                continue
            key = log_key(log_scenes, params, maps_digest)
            if not overwrite and manifest.get(log_name) == key and target.exists():
                report.logs_skipped.append(log_name)
                bar.update(1)
                continue
            jobs.append((log_name, key))
            yield log_scenes

    try:
        for done in executor.map(_build_log, to_build(), shared=(str(maps_root), out, params, is_synthetic), ordered=True,
                                 progress=False):
            log_name, key = jobs[done.index]
            if isinstance(done.error, WorkerLostError):  # lost more often than the retries allow: this log fails
                n, failures = 0, [{"log": log_name, "token": "*", "error": str(done.error)}]
            else:
                n, failures = done.result()
            report.failures.extend(failures)
            if n:
                manifest[log_name] = key
                report.logs_written.append(log_name)
                report.scenes += n
                _save_manifest(out, manifest)  # after every log: an interrupted run keeps what it finished
            else:  # an earlier file of this log no longer matches its scenes: removed below, unless nothing was built
                emptied.append(log_name)
            report.seconds = time.perf_counter() - start
            bar.update(1)
            if progress is not None:
                progress(report)
    finally:
        bar.close()
    if seen and not report.logs_written and not report.logs_skipped:
        # Every log of a non-empty input failed (a broken map, a bad maps_root): that is the stage's
        # problem, not the logs'. Fail and leave the previous caches as they were.
        first = report.failures[0]["error"] if report.failures else "no scene could be cached"
        raise NothingBuiltError(f"metric cache {out}: built nothing from {len(seen)} log(s) "
                                f"({len(report.failures)} scene(s) failed; first: {first[:500]}); "
                                "the previous caches are kept")
    for log_name in emptied:
        log_file(out, log_name).unlink(missing_ok=True)
        manifest.pop(log_name, None)
    if emptied:
        _save_manifest(out, manifest)
    if prune:
        for stale in sorted(set(manifest) - seen):
            try:
                log_file(out, stale).unlink(missing_ok=True)
            except UnsafePathError:  # a manifest entry no run of this code wrote: drop it, touch nothing
                pass
            manifest.pop(stale)
            report.logs_removed.append(stale)
        _save_manifest(out, manifest)
    report.seconds = time.perf_counter() - start
    return report
