"""Stage metric_cache: per scene, everything the scorers need (map crop, route, lights, 10 Hz agents,
ego past, PDM-Closed reference), one Parquet file per log under data/metric_cache/<split>/; with
metrics.navhard.enabled, the synthetic stage-2 scenes of the navhard split under data/metric_cache/navhard/.

Incremental by log (drivefine_core.metrics.cache_stage); the output is `persist: true` in dvc.yaml so
DVC keeps the files of unchanged logs."""

from __future__ import annotations

from pathlib import Path

import mlflow

from drivefine_core.data.scenes_io import read_scene_index, read_scenes
from drivefine_core.executor.core import make_executor
from drivefine_core.metrics.cache_stage import build_metric_cache_dir
from drivefine_core.metrics.navhard_cache_stage import build_navhard_dir
from stages._common import dvc_dep_hashes, main, open_run, write_json
from stages.sources import maps_root

SCENES = Path("data/ingest/scenes")
OUT = Path("data/metric_cache")


def run(params) -> None:
    with open_run("metric_cache", params, {"metrics": params.metrics, "map": params.map}):
        maps = maps_root(params.data)
        maps_digest = dvc_dep_hashes("metric_cache").get(maps, maps)  # DVC's hash of the maps dep
        metrics: dict[str, float] = {}
        executor = make_executor(params.executor)
        for scenes_file in sorted(SCENES.glob("*.parquet")):
            split = scenes_file.stem
            logs = len(set(read_scene_index(scenes_file).column("log_name").to_pylist()))
            report = build_metric_cache_dir(read_scenes(scenes_file), maps, OUT / split, params.metrics,
                                            maps_digest=maps_digest, executor=executor, total_logs=logs)
            for f in report.failures:
                print(f"  skipped scene {f['token']} of {f['log']}: {f['error']}")
            metrics.update({f"{split}_logs_built": len(report.logs_written),
                            f"{split}_logs_reused": len(report.logs_skipped),
                            f"{split}_logs_removed": len(report.logs_removed),
                            f"{split}_scenes_built": report.scenes, f"{split}_scenes_failed": len(report.failures),
                            f"{split}_scenes_per_s": round(report.scenes_per_second, 2)})
        navhard = params.metrics.navhard
        if navhard.enabled and (SCENES / f"{navhard.split}.parquet").exists():
            report, groups = build_navhard_dir(read_scenes(SCENES / f"{navhard.split}.parquet"), maps,
                                               OUT / "navhard" / navhard.split, params.metrics, maps_digest)
            for f in report.failures:
                print(f"  skipped navhard scene {f['token']} of {f['log']}: {f['error']}")
            metrics.update({"navhard_groups": groups, "navhard_scenes_built": report.scenes,
                            "navhard_scenes_failed": len(report.failures)})
        write_json("metrics/metric_cache.json", metrics)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        print(f"metric_cache: {metrics}")


if __name__ == "__main__":
    main(run)
