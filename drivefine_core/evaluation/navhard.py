"""navhard two-stage scores of the evaluate stage, from the stage-2 caches the metric_cache stage built.

Baselines plan from the metric caches. The learned planners read camera features, and the synthetic world
renders no image from a moved (stage-2) start: at a stage-2 start a planner sees its own ego state, command
and history (from the stage-2 cache) with the camera of the logged scene of the same log nearest in time
(`logged_cameras`), taken from the logged ego pose a few metres away. NAVSIM's navhard renders the moved
view instead, so the learned planners' stage-2 scores measure their reaction to the moved ego state more
than to the moved view; the report says so.
"""

from __future__ import annotations

from bisect import bisect_left
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from drivefine_core.evaluation.agents import FeatureIndex, planner_agent
from drivefine_core.metrics.baselines import Agent
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.metrics.navhard import NavhardGroup, score_navhard
from drivefine_core.metrics.navhard_groups import GROUPS_FILE, read_groups, resolve_groups
from drivefine_core.metrics.params import NavhardParams
from drivefine_core.metrics.reactive_scoring import placements_from_maps
from drivefine_core.models.planner import Planner

CAMERA_NOTE = ("learned planners see the logged camera at stage-2 starts (the synthetic world renders no moved "
               "view)")


def load_groups(stage_one: Sequence[MetricCache], navhard_dir: str | Path) -> tuple[list[NavhardGroup], str]:
    """(groups whose caches all exist, a line for the report)."""
    root = Path(navhard_dir)
    if not (root / GROUPS_FILE).exists():
        return [], f"navhard: no stage-2 scenes under {root} (metric_cache stage, metrics.navhard)"
    groups, dropped = resolve_groups(read_groups(root / GROUPS_FILE), stage_one, read_metric_caches(root))
    if not groups:
        return [], f"navhard: none of the {len(dropped)} groups has all its caches"
    line = (f"navhard two-stage: {len(groups)} groups, "
            f"{sum(len(g.synthetic_now) + len(g.synthetic_prev) for g in groups)} stage-2 scenes"
            + (f", {len(dropped)} groups without caches" if dropped else ""))
    return groups, line


def logged_cameras(groups: Sequence[NavhardGroup], logged: Sequence[MetricCache],
                   max_gap_us: int = 250_000) -> dict[str, str]:
    """Stage-2 scene token -> the token of the logged scene of its log nearest in time, within max_gap_us
    (stage-2 scenes with none are left out)."""
    by_log: dict[str, list[tuple[int, str]]] = {}
    for c in logged:
        by_log.setdefault(c.log_name, []).append((c.timestamp_us, c.token))
    for entries in by_log.values():
        entries.sort()
    out: dict[str, str] = {}
    for g in groups:
        for c in [*g.synthetic_now, *g.synthetic_prev]:
            entries = by_log.get(c.log_name, [])
            k = bisect_left(entries, (c.timestamp_us, ""))
            near = [e for e in entries[max(k - 1, 0) : k + 1] if abs(e[0] - c.timestamp_us) <= max_gap_us]
            if near:
                out[c.token] = min(near, key=lambda e: abs(e[0] - c.timestamp_us))[1]
    return out


def covered(groups: Sequence[NavhardGroup], cameras: dict[str, str]) -> list[NavhardGroup]:
    """The groups whose every stage-2 scene has a camera."""
    return [g for g in groups if all(c.token in cameras for c in [*g.synthetic_now, *g.synthetic_prev])]


def navhard_table(groups: Sequence[NavhardGroup], agents: dict[str, Agent], params: NavhardParams,
                  maps_root: str | Path) -> pd.DataFrame:
    """One row per agent: v2/epdms (the navhard score), stage-1 and stage-2 means, groups scored."""
    reactive = placements_from_maps(maps_root) if params.reactive_agents else None
    rows = {}
    for name, agent in agents.items():
        score, table = score_navhard(groups, agent, reactive, params.reactive)
        rows[name] = {"v2/epdms": score, "stage1/v2/epdms": float(np.nanmean(table[["s1_now", "s1_prev"]].to_numpy())),
                      "stage2/v2/epdms": float(np.nanmean(table[["s2_now", "s2_prev"]].to_numpy())),
                      "groups": float(len(groups))}
    return pd.DataFrame.from_dict(rows, orient="index")


def traffic_note(params: NavhardParams) -> str:
    return "reactive IDM vehicles" if params.reactive_agents else "log-replay agents"


def navhard_scores(caches: Sequence[MetricCache], baselines: dict[str, Agent], planners: dict[str, Planner],
                   features: FeatureIndex, navhard_dir: str | Path, params: NavhardParams, maps_root: str | Path,
                   batch_size: int = 32, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """navhard two-stage EPDMS of the baselines and of the planners ({"<stage>/<mode>": planner}), all on the
    same groups: those where a planner has a camera at every stage-2 start (every group when no planner is
    scored) -> (one row per variant, a line for the report)."""
    groups, line = load_groups(caches, navhard_dir)
    if not groups:
        return pd.DataFrame(), line
    scored = dict(baselines)
    cameras = logged_cameras(groups, caches)
    with_camera = covered(groups, cameras)
    if planners and with_camera:
        scored |= {n: planner_agent(p, n.split("/", 1)[1], features, batch_size, seed, cameras=cameras)
                   for n, p in planners.items()}
        line += f"; scored on the {len(with_camera)} groups with a logged camera at every stage-2 start ({CAMERA_NOTE})"
        groups = with_camera
    elif planners:
        line += "; no group has a logged camera at every stage-2 start: baselines only"
    return navhard_table(groups, scored, params, maps_root), f"{line}; {traffic_note(params)}"
