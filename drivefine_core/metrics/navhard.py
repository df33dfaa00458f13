"""navhard two-stage scoring: stage 1 on the original scene, stage 2 on synthetic scenes starting ~4 s
later, weighted by how close the stage-1 plan ends to each synthetic start (Gaussian, sigma^2 = 0.1).

With `reactive` (where to put vehicles on the map), both stages are scored with NAVSIM's reactive IDM
vehicles (metrics.reactive_scoring); without it, other agents are replayed from the log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from drivefine_core.data.schema import ego_to_global
from drivefine_core.metrics import constants as K
from drivefine_core.metrics.baselines import Agent
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.params import ReactiveAgentsParams
from drivefine_core.metrics.reactive_scoring import PlacementsFor, score_reactive
from drivefine_core.metrics.scorer import score_trajectories


@dataclass
class NavhardGroup:
    original: MetricCache  # stage 1, "now"
    synthetic_now: list[MetricCache]  # stage 2 scenes for the original
    original_prev: MetricCache | None = None  # stage 1 scene 0.5 s earlier (its plan pairs for EC)
    synthetic_prev: list[MetricCache] = field(default_factory=list)


def stage_two_weights(final_xy: np.ndarray, starts_xy: np.ndarray) -> np.ndarray:
    """w = exp(-d^2 / (2 * 0.1)) normalised; uniform when the sum is ~0 (or there is nothing close)."""
    starts_xy = np.asarray(starts_xy, dtype=np.float64).reshape(-1, 2)
    if len(starts_xy) == 0:
        return np.zeros(0)
    d2 = np.sum((starts_xy - np.asarray(final_xy)[None, :2]) ** 2, axis=1)
    w = np.exp(-d2 / (2 * K.NAVHARD_SIGMA2))
    total = w.sum()
    if total < 1e-12:
        return np.full(len(w), 1.0 / len(w))
    return w / total


def _epdms(caches: list[MetricCache], plans: np.ndarray, reactive: PlacementsFor | None,
           params: ReactiveAgentsParams | None, ec_pairs: bool) -> np.ndarray:
    """(S,) v2 EPDMS of one plan per scene; EC paired within `caches` when ec_pairs."""
    replay = score_trajectories(caches, plans[:, None], "v2", extended_comfort_pairs=ec_pairs)
    if reactive is None:
        return replay["v2/epdms"][:, 0]
    return score_reactive(caches, plans, reactive, params, ec=replay["v2/ec"][:, 0])["v2/epdms"]


def _stage_two(first: MetricCache, plan: np.ndarray, synthetic: list[MetricCache], agent: Agent,
               reactive: PlacementsFor | None, params: ReactiveAgentsParams | None) -> float:
    """Weighted stage-2 EPDMS of one original scene's synthetic set, weights from the stage-1 plan."""
    if not synthetic:
        raise ValueError(f"navhard: scene {first.token!r} has no synthetic stage-2 scenes")
    final_xy = ego_to_global(plan[-1][None], first.origin)[0, :2]
    w = stage_two_weights(final_xy, np.stack([c.origin[:2] for c in synthetic]))
    s2 = _epdms(synthetic, np.asarray(agent(synthetic), dtype=np.float64), reactive, params, ec_pairs=False)
    return float(np.sum(w * s2))


def score_navhard(groups: Sequence[NavhardGroup], agent: Agent, reactive: PlacementsFor | None = None,
                  params: ReactiveAgentsParams | None = None) -> tuple[float, pd.DataFrame]:
    """Group score = 1/2 [S1(orig) * sum w S2(now) + S1(prev) * sum w S2(prev)] (only the "now" term when
    a group has no previous frame); navhard EPDMS = mean over groups. Stage 1 uses v2 with EC pairs.
    `reactive`: vehicle placements on the map -> both stages with reactive IDM vehicles."""
    rows = []
    for gi, g in enumerate(groups):
        firsts = [g.original] + ([g.original_prev] if g.original_prev is not None else [])
        plans = np.asarray(agent(firsts), dtype=np.float64)
        s1 = _epdms(firsts, plans, reactive, params, ec_pairs=True)
        now = _stage_two(g.original, plans[0], g.synthetic_now, agent, reactive, params)
        terms = [s1[0] * now]
        prev = float("nan")
        if g.original_prev is not None:
            prev = _stage_two(g.original_prev, plans[1], g.synthetic_prev or g.synthetic_now, agent, reactive, params)
            terms.append(s1[1] * prev)
        score = float(np.mean(terms))
        rows.append({"group": gi, "token": g.original.token, "s1_now": float(s1[0]),
                     "s1_prev": float(s1[1]) if len(s1) > 1 else float("nan"),
                     "s2_now": now, "s2_prev": prev, "v2/navhard_epdms": score})
    table = pd.DataFrame(rows)
    return float(table["v2/navhard_epdms"].mean()) if rows else float("nan"), table
