"""Plan one scene with a registered planner: the serving input of a scene token, its metric cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from drivefine_core.features.row_groups import list_row_groups, read_row_group
from drivefine_core.features.samples import table_columns
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.tracking.planner_pyfunc import frame_from_feature_columns


def scene_input(token: str, features_root: str | Path = "data/features") -> tuple[pd.DataFrame, str, str]:
    """(serving input row, split, log) of a scene token, searched in every split's feature store."""
    for store in sorted(Path(features_root).iterdir()) if Path(features_root).exists() else []:
        if not (store / "_manifest.json").exists():
            continue
        for group in list_row_groups(str(store)):
            cols = table_columns(read_row_group(group))
            if token in cols["token"]:
                i = cols["token"].index(token)
                return frame_from_feature_columns(cols, [i]), store.name, cols["log_name"][i]
    raise KeyError(f"scene token {token!r} is in no feature store under {features_root}/")


def scene_cache(token: str, split: str, log: str, root: str | Path = "data/metric_cache") -> MetricCache | None:
    path = Path(root) / split
    if not (path / f"{log}.parquet").exists():
        return None
    return next((c for c in read_metric_caches(path, [log]) if c.token == token), None)
