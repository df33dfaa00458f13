"""Stage metric_cache: per scene, everything the scorers need (map crop, route, lights, 10 Hz agents,
ego past, PDM-Closed reference), one Parquet file per log under data/metric_cache/<split>/.

Incremental by log: a log is rebuilt only when its scenes, the map or the metrics params changed
(keys kept in manifest.json; the output is `persist: true` in dvc.yaml so DVC keeps earlier files)."""

from __future__ import annotations

import hashlib
import json
import time
from itertools import groupby
from pathlib import Path

import mlflow
import numpy as np
from tqdm import tqdm

from drivefine_core.data.map_api import load_map_api
from drivefine_core.data.scenes_io import read_scenes
from drivefine_core.metrics.cache_builder import build_metric_cache
from drivefine_core.metrics.cache_io import write_metric_caches
from drivefine_core.tracking.lineage import dvc_md5
from stages._common import main, open_run, write_json
from stages.sources import maps_root

SCENES = Path("data/ingest/scenes")
OUT = Path("data/metric_cache")


def log_key(scenes, params_json: str, maps_digest: str) -> str:
    h = hashlib.sha256(params_json.encode() + maps_digest.encode())
    for s in scenes:
        h.update(s.token.encode())
        for f in s.frames:
            h.update(np.ascontiguousarray(f.ego.pose, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(f.annotations.boxes, dtype=np.float64).tobytes())
            h.update(repr((f.traffic_lights, f.roadblock_ids, f.annotations.track_tokens)).encode())
    return h.hexdigest()


def run(params) -> None:
    with open_run("metric_cache", params, {"metrics": params.metrics, "map": params.map}):
        maps = maps_root(params.data)
        maps_digest = dvc_md5(Path(maps)) if Path(maps).exists() else maps
        params_json = json.dumps({"metrics": params.metrics.model_dump(mode="json"),
                                  "map": params.map.model_dump(mode="json")}, sort_keys=True)
        metrics: dict[str, float] = {}
        for scenes_file in sorted(SCENES.glob("*.parquet")):
            split = scenes_file.stem
            out = OUT / split
            manifest_path = out / "manifest.json"
            manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
            built = reused = failed = scenes_n = 0
            start = time.perf_counter()
            seen = set()
            for log_name, group in tqdm(groupby(read_scenes(scenes_file), key=lambda s: s.log_name),
                                        desc=f"metric cache {split}", unit="log"):
                scenes = list(group)
                seen.add(log_name)
                key = log_key(scenes, params_json, maps_digest)
                if manifest.get(log_name) == key and (out / f"{log_name}.parquet").exists():
                    reused += 1
                    continue
                caches = []
                for scene in scenes:
                    try:
                        api = load_map_api(maps, scene.map_location)
                        caches.append(build_metric_cache(scene, api, params.metrics, is_synthetic=False))
                    except (ValueError, KeyError, FileNotFoundError) as exc:
                        failed += 1
                        print(f"  skipped scene {scene.token}: {exc}")
                if caches:
                    write_metric_caches(caches, out)
                    manifest[log_name] = key
                else:  # an earlier file of this log no longer matches its scenes
                    (out / f"{log_name}.parquet").unlink(missing_ok=True)
                    manifest.pop(log_name, None)
                built += 1
                scenes_n += len(caches)
            for stale in set(manifest) - seen:  # logs no longer in the input
                (out / f"{stale}.parquet").unlink(missing_ok=True)
                manifest.pop(stale)
            write_json(manifest_path, manifest)
            seconds = time.perf_counter() - start
            metrics.update({f"{split}_logs_built": built, f"{split}_logs_reused": reused,
                            f"{split}_scenes_built": scenes_n, f"{split}_scenes_failed": failed,
                            f"{split}_scenes_per_s": round(scenes_n / seconds, 2) if scenes_n else 0.0})
        write_json("metrics/metric_cache.json", metrics)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        print(f"metric_cache: {metrics}")


if __name__ == "__main__":
    main(run)
