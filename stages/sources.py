"""Where a stage finds the logs, sensor blobs and maps: the synthetic world or a NAVSIM download."""

from __future__ import annotations

from drivefine_core.pipeline_params import DataSourceParams

SYNTHETIC_ROOT = "data/synthetic"


def source_root(data: DataSourceParams) -> str:
    return SYNTHETIC_ROOT if data.synthetic else data.source.rstrip("/")


def sensor_blobs(data: DataSourceParams) -> str:
    return data.sensor_blobs or f"{source_root(data)}/sensor_blobs"


def maps_root(data: DataSourceParams) -> str:
    return data.maps_root or f"{source_root(data)}/maps"
