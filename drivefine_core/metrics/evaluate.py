"""Evaluate-stage library call: every agent on every cache, v1 and v2 sub-scores side by side."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from drivefine_core.metrics.baselines import Agent
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.metrics.scorer import score_trajectories


def _chunks(caches: Sequence[MetricCache], size: int) -> list[list[int]]:
    """Index chunks of about `size` scenes that never split a log (EC needs the previous scene)."""
    by_log: dict[str, list[int]] = {}
    for i, c in enumerate(caches):
        by_log.setdefault(c.log_name, []).append(i)
    chunks, cur = [], []
    for idx in by_log.values():
        if cur and len(cur) + len(idx) > size:
            chunks.append(cur)
            cur = []
        cur.extend(idx)
    if cur:
        chunks.append(cur)
    return chunks


def evaluate_agents(caches: Sequence[MetricCache], agents: dict[str, Agent], params: MetricsParams | None = None,
                    ) -> tuple[dict[str, float], pd.DataFrame]:
    """-> (split means {"<agent>/v1/pdms": .., "<agent>/v2/epdms": ..}, per-scene DataFrame).

    Split aggregate = mean over scenes (nan-aware for v2/ec, which is nan without a predecessor)."""
    params = params or MetricsParams()
    if not caches:
        raise ValueError("evaluate_agents: no metric caches to evaluate")
    rows = []
    for name, agent in agents.items():
        for idx in _chunks(caches, params.chunk_scenes):
            part = [caches[i] for i in idx]
            plans = np.asarray(agent(part), dtype=np.float64)
            if plans.shape != (len(part), 8, 3):
                raise ValueError(f"agent {name!r} returned trajectories of shape {plans.shape}, expected ({len(part)}, 8, 3)")
            scores = score_trajectories(part, plans[:, None], params.version, params.extended_comfort_pairs, params.human_filter)
            for j, c in enumerate(part):
                row = {"agent": name, "token": c.token, "log_name": c.log_name}
                row.update({k: float(v[j, 0]) for k, v in scores.items()})
                rows.append(row)
    table = pd.DataFrame(rows)
    metric_cols = [c for c in table.columns if c.startswith(("v1/", "v2/"))]
    means = {}
    for name, group in table.groupby("agent", sort=False):
        for col in metric_cols:
            means[f"{name}/{col}"] = float(np.nanmean(group[col])) if group[col].notna().any() else float("nan")
    return means, table
