"""Scoring every planner variant side by side and picking the best learned one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from drivefine_core.evaluation.agents import Agent
from drivefine_core.executor.core import Executor
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.evaluate import evaluate_agents
from drivefine_core.metrics.params import MetricsParams

SUMMARY_METRICS = ("v1/pdms", "v1/nc", "v1/dac", "v1/ttc", "v1/ep", "v1/c", "v1/ddc",
                   "v2/epdms", "v2/nc", "v2/dac", "v2/ddc", "v2/tlc", "v2/ttc", "v2/ep", "v2/lk", "v2/hc", "v2/ec")


def score_table(caches: Sequence[MetricCache], agents: dict[str, Agent], params: MetricsParams,
                executor: Executor | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (variant x sub-score table of split means, per-scene scores); scored on `executor` (default: here)."""
    means, per_scene = evaluate_agents(caches, agents, params, executor)
    rows = {}
    for name in agents:
        rows[name] = {m: means.get(f"{name}/{m}", np.nan) for m in SUMMARY_METRICS if f"{name}/{m}" in means}
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table, per_scene


def flat_scores(table: pd.DataFrame, prefix: str = "") -> dict[str, float]:
    """A variant x metric table as metrics/evaluate.json's keys ("<prefix><variant>/<metric>"), finite cells only."""
    return {f"{prefix}{v}/{m}": float(x) for v, row in table.iterrows() for m, x in row.items() if np.isfinite(x)}


def best_variant(table: pd.DataFrame, candidates: Sequence[str], metric: str) -> str:
    scores = table.loc[[c for c in candidates if c in table.index], metric]
    if scores.empty or scores.isna().all():
        raise ValueError(f"no learned planner variant has a {metric} score (variants: {list(table.index)})")
    return str(scores.idxmax())


def best_and_worst(per_scene: pd.DataFrame, variant: str, metric: str, k: int) -> list[tuple[str, float, str]]:
    """(token, score, label) of the k best and k worst scenes of a variant."""
    rows = per_scene[per_scene["agent"] == variant].sort_values(metric)
    worst = [(t, s, "worst") for t, s in zip(rows["token"][:k], rows[metric][:k])]
    best = [(t, s, "best") for t, s in zip(rows["token"][::-1][:k], rows[metric][::-1][:k])]
    return best + worst


def plans_vary(plans: dict[str, np.ndarray], tol_m: float = 0.05) -> bool:
    """False when every scene got (nearly) the same plan: a collapsed planner, never a candidate for the
    registry however it happens to score. Needs at least two scenes."""
    stacked = np.stack(list(plans.values())) if plans else np.zeros((0, 8, 3))
    if len(stacked) < 2:
        return False
    return bool(np.abs(stacked[..., :2] - stacked[:1, ..., :2]).max() > tol_m)
