"""The curated test split: the scenes that tell planners apart.

NAVSIM built navtest by leaving out scenes with a near-trivial solution and scenes the human does not solve.
Here the same filter runs on the per-scene scores the evaluate stage already has: a scene stays when
constant velocity scores below `max_constant_velocity` and the human replay at least `min_human`
(both on `metric`). On the synthetic world's full split constant velocity already scores about 0.65 PDMS,
so an ego-status extrapolation looks good; on the curated scenes it cannot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from drivefine_core.pipeline_params import CurationParams

REQUIRED_AGENTS = ("constant_velocity", "human")


def curated_tokens(per_scene: pd.DataFrame, p: CurationParams) -> list[str]:
    """Scene tokens kept by the curation, in the order of the per-scene table."""
    have = set(per_scene["agent"])
    missing = [a for a in REQUIRED_AGENTS if a not in have]
    if missing:
        raise ValueError(f"curation needs the per-scene scores of {missing} (evaluate.baselines)")
    score = per_scene.pivot_table(index="token", columns="agent", values=p.metric, aggfunc="first")
    keep = (score["constant_velocity"] < p.max_constant_velocity) & (score["human"] >= p.min_human)
    kept = set(score.index[keep])
    return [t for t in dict.fromkeys(per_scene["token"]) if t in kept]


def means_over(per_scene: pd.DataFrame, tokens: list[str], metrics: tuple[str, ...]) -> pd.DataFrame:
    """Variant x metric table of means over the given scenes (nan-aware, as the full split's table)."""
    rows = per_scene[per_scene["token"].isin(set(tokens))]
    cols = [m for m in metrics if m in rows.columns]
    table = rows.groupby("agent", sort=False)[cols].agg(lambda x: np.nanmean(x) if x.notna().any() else np.nan)
    table.index.name = None
    return table
