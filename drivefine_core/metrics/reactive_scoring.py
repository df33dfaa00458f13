"""EPDMS (v2) with reactive vehicles, one trajectory per scene, beside the log-replay scorer.

As in NAVSIM's pdm_score: the candidate is simulated (LQR + bicycle), the vehicles react to that simulated
ego, and the candidate and the PDM-Closed reference are scored against those vehicles. The human filter
simulates the logged human with vehicles reacting to the human. EC does not depend on other agents; it
comes in from the log-replay scorer (`ec`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.params import ReactiveAgentsParams
from drivefine_core.metrics.reactive_agents import PlacementSource, map_placements, reactive_cache, simulate_reactive
from drivefine_core.metrics.scorer import V2_FILTERED, V2_KEYS, epdms, score_trajectories, simulate_rows

PlacementsFor = Callable[[MetricCache], PlacementSource]


def _vehicle_rows(cache: MetricCache) -> np.ndarray:
    is_vehicle = np.array([n == "vehicle" for n in cache.agent_names], dtype=bool)
    return np.flatnonzero(is_vehicle & cache.agent_valid[:, 0]) if cache.num_agents else np.zeros(0, dtype=int)


def _v2(cache: MetricCache, plan: np.ndarray) -> dict[str, float]:
    out = score_trajectories([cache], plan[None, None], "v2", extended_comfort_pairs=False, human_filter=False)
    return {k[3:]: float(v[0, 0]) for k, v in out.items()}


def score_reactive(caches: Sequence[MetricCache], plans: np.ndarray, placements_for: PlacementsFor,
                   params: ReactiveAgentsParams | None = None, ec: np.ndarray | None = None,
                   human_filter: bool = True) -> dict[str, np.ndarray]:
    """(S, 8, 3) plans -> {"v2/<sub-score>": (S,)} with reactive vehicles; ec: (S,) nan where unpaired."""
    params = params or ReactiveAgentsParams()
    plans = np.asarray(plans, dtype=np.float64)
    if plans.shape != (len(caches), K.PLAN_POSES, 3):
        raise ValueError(f"plans must be (S={len(caches)}, {K.PLAN_POSES}, 3), got {plans.shape}")
    ec = np.full(len(caches), np.nan) if ec is None else np.asarray(ec, dtype=np.float64)
    rows: list[dict[str, float]] = []
    for i, cache in enumerate(caches):
        states, human_ok = simulate_rows([cache], plans[i][None, None])  # rows: reference, candidate, human
        placements = placements_for(cache)(cache, _vehicle_rows(cache))
        world = reactive_cache(cache, simulate_reactive(cache, states[0, 1], placements, params))
        sub = _v2(world, plans[i])
        if human_filter and human_ok[0] and not cache.is_synthetic:
            human_world = reactive_cache(cache, simulate_reactive(cache, states[0, 2], placements, params))
            human = _v2(human_world, cache.human_future)
            for k in V2_FILTERED:
                if human[k] == 0.0:
                    sub[k] = 1.0
        sub["ec"] = float(ec[i])
        rows.append(sub)
    out = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in V2_KEYS if k != "epdms"}
    out["epdms"] = epdms(out, np.isfinite(out["ec"]))
    return {f"v2/{k}": v for k, v in out.items()}


def placements_from_maps(maps_root: str | Path) -> PlacementsFor:
    """Vehicle placements from the nuPlan maps under `maps_root` (one map API per location)."""
    from drivefine_core.data.map_api import load_map_api

    @lru_cache(maxsize=8)
    def for_location(location: str) -> PlacementSource:
        api = load_map_api(maps_root, location)
        return map_placements(api, set(api.network.lane_connectors))

    return lambda cache: for_location(cache.map_location)
