"""Stage features: the Parquet feature cache, one store per split (data/features/<split>), one
partition per log, recomputed only for logs whose content or build params changed. Great
Expectations checks the logs just written; a failing log is dropped from the store and quarantined."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlflow
import pandas as pd

from drivefine_core.executor.core import make_executor
from drivefine_core.features.from_scenes import build_features_from_scenes_file
from drivefine_core.features.manifest import load_manifest, save_manifest
from drivefine_core.storage import delete
from drivefine_core.storage.uri import join_uri
from drivefine_core.validation.feature_checks import validate_features
from stages._common import main, open_run, write_json
from stages.sources import sensor_blobs

SCENES = Path("data/ingest/scenes")
OUT = Path("data/features")


def quarantine(store: str, logs: dict[str, list[str]], storage) -> None:
    """Remove failing logs' partitions so no later stage can read them."""
    manifest = load_manifest(store, storage)
    for log in logs:
        entry = manifest.logs.pop(log, None)
        if entry is not None:
            delete(join_uri(store, entry.path), storage)
    save_manifest(store, manifest, storage)


def run(params) -> None:
    section = {"features": params.features, "validation": params.validation}
    with open_run("features", params, section):
        metrics: dict[str, float] = {}
        refused: list[dict] = []
        executor = make_executor(params.executor, params.features.build_workers)
        for scenes_file in sorted(SCENES.glob("*.parquet")):
            split = scenes_file.stem
            store = str(OUT / split)
            result = build_features_from_scenes_file(
                scenes_file, sensor_blobs(params.data), store, params.features, storage=params.storage,
                on_log=lambda log, state, n: print(f"  {split}/{log}: {state} ({n} scenes)"),  # noqa: B023 - called before the loop moves on
                executor=executor)
            refused += [{"log": log, "split": split, "reason": why, "field": "features"} for log, why in result.failed.items()]
            if result.written:
                report = validate_features(store, params.features, params.validation, logs=result.written)
                failing = {log: fails for log, fails in report.by_log.items() if fails}
                quarantine(store, failing, params.storage)
                refused += [{"log": log, "split": split, "reason": "; ".join(f), "field": "validation"}
                            for log, f in failing.items()]
                mlflow.log_dict(report.to_dict(), f"gx/features_{split}.json")
            summary = result.to_dict()
            for key in ("scenes", "scenes_written", "bytes_per_scene", "scenes_per_s", "clipped_values"):
                metrics[f"{split}_{key}"] = float(summary[key])
            metrics[f"{split}_logs_written"] = float(len(result.written))
            metrics[f"{split}_logs_reused"] = float(len(result.reused))
            manifest = load_manifest(store)
            index = pd.DataFrame([{"log": k, "rows": e.rows, "bytes": e.bytes, "key": e.key}
                                  for k, e in sorted(manifest.logs.items())])
            dataset = mlflow.data.from_pandas(index, source=store, name=f"features-{split}",
                                              digest=manifest_digest(manifest))
            mlflow.log_input(dataset, context=split)
        metrics["logs_quarantined"] = float(len(refused))
        write_json(OUT / "quarantine.json", refused)
        write_json("metrics/features.json", metrics)
        mlflow.log_metrics(metrics)
        print(f"features: {metrics}")


def manifest_digest(manifest) -> str:
    keys = "".join(f"{k}:{e.key};" for k, e in sorted(manifest.logs.items()))
    return hashlib.sha256(keys.encode()).hexdigest()[:16]


if __name__ == "__main__":
    main(run)
