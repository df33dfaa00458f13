"""Where a stage finds the logs, sensor blobs and maps: the synthetic world or a NAVSIM download.

`data_inputs` names, per stage, what params point it at; flows/dvc_deps.py writes those paths into
dvc.yaml as the stage's deps, so that a new or changed log, image or map re-runs the stages reading it.
"""

from __future__ import annotations

import os

from drivefine_core.pipeline_params import DataSourceParams

SYNTHETIC_ROOT = "data/synthetic"  # the generate stage's output: replaced whole on every run


def source_root(data: DataSourceParams) -> str:
    return SYNTHETIC_ROOT if data.synthetic else data.source.rstrip("/")


def sensor_blobs(data: DataSourceParams) -> str:
    return (data.sensor_blobs or f"{source_root(data)}/sensor_blobs").rstrip("/")


def maps_root(data: DataSourceParams) -> str:
    return (data.maps_root or f"{source_root(data)}/maps").rstrip("/")


def data_inputs(data: DataSourceParams) -> dict[str, list[str]]:
    """The data each stage reads where params point it (its DVC deps besides other stages' outputs).
    Real data or maps inside the generated folder are refused: `generate` would delete them."""
    paths = {"data.source": source_root(data), "data.sensor_blobs": sensor_blobs(data), "data.maps_root": maps_root(data)}
    generated = {SYNTHETIC_ROOT, f"{SYNTHETIC_ROOT}/sensor_blobs", f"{SYNTHETIC_ROOT}/maps"} if data.synthetic else set()
    for key, path in paths.items():
        path = path if "://" in path else os.path.normpath(path)
        if (path == SYNTHETIC_ROOT or path.startswith(SYNTHETIC_ROOT + "/")) and path not in generated:
            raise ValueError(f"{key}: {path} lies in {SYNTHETIC_ROOT}, which the generate stage replaces on every "
                             "run; keep real logs, sensor blobs and maps outside it (README: Real NAVSIM data)")
    return {"ingest": [f"{source_root(data)}/navsim_logs/{s}" for s in data.split_dirs],
            "features": [f"{sensor_blobs(data)}/{s}" for s in data.split_dirs],
            "metric_cache": [maps_root(data)]}
