"""Evaluate-stage library call: every agent on every cache, v1 and v2 sub-scores side by side."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from drivefine_core.executor.core import Executor, make_executor
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


def _score_chunk(shared: tuple[list[MetricCache], MetricsParams], job: tuple[list[int], list[np.ndarray]]
                 ) -> list[dict[str, np.ndarray]]:
    """Scores of every agent's plans for one chunk of scenes; runs on the executor's workers. A scene's
    reference and human rows are its own (precomputed by the metric_cache stage, or simulated for that scene
    alone), so a score does not depend on which worker saw the scene before."""
    caches, params = shared
    idx, plans = job
    part = [caches[i] for i in idx]
    scores = [score_trajectories(part, p[:, None], params.version, params.extended_comfort_pairs,
                                 params.human_filter) for p in plans]
    for c in part:  # every agent of this chunk is scored: its index can go (cheap to re-wrap for a cache read
        # from Parquet; one built in memory holds its own tables, ~0.5 MB)
        c.forget("index")
    return scores


def evaluate_agents(caches: Sequence[MetricCache], agents: dict[str, Agent], params: MetricsParams | None = None,
                    executor: Executor | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """-> (split means {"<agent>/v1/pdms": .., "<agent>/v2/epdms": ..}, per-scene DataFrame).

    Agents plan in this process (they may hold a model), chunk by chunk; each chunk's plans are scored on
    `executor` (default: this process) while the agents plan the next one. Split aggregate = mean over
    scenes (nan-aware for v2/ec, which is nan without a predecessor)."""
    params = params or MetricsParams()
    if not caches:
        raise ValueError("evaluate_agents: no metric caches to evaluate")
    caches = list(caches)
    chunks = _chunks(caches, params.chunk_scenes)

    def plans() -> Iterator[tuple[list[int], list[np.ndarray]]]:
        for idx in chunks:
            part = [caches[i] for i in idx]
            out = []
            for name, agent in agents.items():
                planned = np.asarray(agent(part), dtype=np.float64)
                if planned.shape != (len(part), 8, 3):
                    raise ValueError(f"agent {name!r} returned trajectories of shape {planned.shape}, "
                                     f"expected ({len(part)}, 8, 3)")
                out.append(planned)
            yield idx, out

    if executor is None or len(chunks) == 1:  # one chunk: nothing to share out, no process to start
        executor = make_executor()
    scored = [done.result() for done in executor.map(_score_chunk, plans(), shared=(caches, params),
                                                     total=len(chunks), desc="scoring chunks", ordered=True)]
    rows = []
    for a, name in enumerate(agents):
        for idx, scores in zip(chunks, scored):
            for j, i in enumerate(idx):
                c = caches[i]
                row = {"agent": name, "token": c.token, "log_name": c.log_name}
                row.update({k: float(v[j, 0]) for k, v in scores[a].items()})
                rows.append(row)
    table = pd.DataFrame(rows)
    metric_cols = [c for c in table.columns if c.startswith(("v1/", "v2/"))]
    means = {}
    for name, group in table.groupby("agent", sort=False):
        for col in metric_cols:
            means[f"{name}/{col}"] = float(np.nanmean(group[col])) if group[col].notna().any() else float("nan")
    return means, table
