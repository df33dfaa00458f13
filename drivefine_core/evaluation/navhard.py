"""navhard two-stage scores of the evaluate stage, from the stage-2 caches the metric_cache stage built.

Only agents that plan from a metric cache (the baselines) are scored: a synthetic stage-2 scene has no
camera images, so the learned planners, which read the feature store, have nothing to plan from there."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from drivefine_core.metrics.baselines import Agent
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.metrics.navhard import score_navhard
from drivefine_core.metrics.navhard_groups import GROUPS_FILE, read_groups, resolve_groups
from drivefine_core.metrics.params import NavhardParams
from drivefine_core.metrics.reactive_scoring import placements_from_maps


def navhard_table(stage_one: Sequence[MetricCache], agents: dict[str, Agent], navhard_dir: str | Path,
                  params: NavhardParams, maps_root: str | Path) -> tuple[pd.DataFrame, str]:
    """-> (one row per agent: v2/epdms, s1 and s2 means, groups; a line for the report). Empty table when
    the split has no navhard groups."""
    root = Path(navhard_dir)
    if not (root / GROUPS_FILE).exists():
        return pd.DataFrame(), f"navhard: no stage-2 scenes under {root} (metric_cache stage, metrics.navhard)"
    groups, dropped = resolve_groups(read_groups(root / GROUPS_FILE), stage_one, read_metric_caches(root))
    if not groups:
        return pd.DataFrame(), f"navhard: none of the {len(dropped)} groups has all its caches"
    reactive = placements_from_maps(maps_root) if params.reactive_agents else None
    rows = {}
    for name, agent in agents.items():
        score, table = score_navhard(groups, agent, reactive, params.reactive)
        rows[name] = {"v2/epdms": score, "stage1/v2/epdms": float(np.nanmean(table[["s1_now", "s1_prev"]].to_numpy())),
                      "stage2/v2/epdms": float(np.nanmean(table[["s2_now", "s2_prev"]].to_numpy())),
                      "groups": float(len(groups))}
    traffic = "reactive IDM vehicles" if reactive is not None else "log-replay agents"
    line = (f"navhard two-stage ({traffic}): {len(groups)} groups, "
            f"{sum(len(g.synthetic_now) + len(g.synthetic_prev) for g in groups)} stage-2 scenes"
            + (f", {len(dropped)} groups without caches" if dropped else "") + "; baselines only (stage-2 scenes have no camera images)")
    return pd.DataFrame.from_dict(rows, orient="index"), line
