"""Build the feature cache of one scenes Parquet file (data/scenes/<split>.parquet from ingest)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from drivefine_core.data.scenes_io import read_scene_index, read_scenes_with_meta
from drivefine_core.data.schema import Scene
from drivefine_core.executor.core import Executor
from drivefine_core.features.params import FeatureParams
from drivefine_core.features.store import StoreResult, build_feature_store
from drivefine_core.storage import StorageParams


def _scenes_with_folders(path: Path, split: str) -> Iterator[tuple[Scene, str]]:
    for scene, meta in read_scenes_with_meta(path):
        if meta.split != split:
            raise ValueError(f"{path}: field 'split': scene {scene.token} of log {scene.log_name} is in split '{meta.split}', the file's first scene in '{split}'")
        yield scene, meta.source_split or meta.split


def first_split(path: str | Path) -> str:
    """The split of a scenes file (its first scene's)."""
    for _, meta in read_scenes_with_meta(path, batch_size=1):
        return meta.split
    raise ValueError(f"{path}: no scenes")


def build_features_from_scenes_file(
    scenes_path: str | Path,
    sensor_blobs: str,
    out_uri: str,
    params: FeatureParams,
    *,
    prune: bool = True,
    storage: StorageParams | None = None,
    on_log: Callable[[str, str, int], None] | None = None,
    executor: Executor | None = None,
) -> StoreResult:
    """Features of every scene in the file, one partition per log under out_uri (see build_feature_store).

    Images are read from <sensor_blobs>/<source_split>/<data_path>, the folder ingest recorded per scene.
    """
    path = Path(scenes_path)
    split = first_split(path)
    logs = len(set(read_scene_index(path).column("log_name").to_pylist()))
    return build_feature_store(
        _scenes_with_folders(path, split), sensor_blobs, out_uri, split, params, prune=prune, storage=storage,
        on_log=on_log, executor=executor, total_logs=logs,
    )
