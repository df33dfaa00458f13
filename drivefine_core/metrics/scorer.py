"""Fast batched scoring: PDMS v1 and EPDMS v2 for S scenes x G candidate trajectories.

Per scene the scored rows are [PDM-Closed reference, G candidates, logged human]; the reference and human
rows are measured once per scene - by the metric cache stage (scene_tables), or here the first time a cache
built in memory is scored - and kept on the cache (cache._runtime), so a call only pays for the candidates.
All candidates of all scenes are simulated in one array call and measured in one pass (batch_metrics);
raw_scene_metrics measures one scene's rows (the reference rows, PDM-Closed's proposals). Every key is labelled with
its version ("v1/pdms", "v2/epdms", "v2/ttc", ...) so the two are never confused.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics import scene_metrics as M
from drivefine_core.metrics.batch_metrics import candidate_metrics
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.comfort import comfort_v1, extended_comfort, history_comfort
from drivefine_core.metrics.simulator import STATE_DIM, initial_states, interpolate_plans, simulate

V1_KEYS = ("nc", "dac", "ddc", "ttc", "ep", "c", "pdms")
V2_KEYS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "epdms")
V2_FILTERED = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc")  # EC is never human-filtered


def _versions(version: str) -> tuple[bool, bool]:
    if version not in ("v1", "v2", "both"):
        raise ValueError(f"score version must be 'v1', 'v2' or 'both', got {version!r}")
    return version in ("v1", "both"), version in ("v2", "both")


def _initial(caches: Sequence[MetricCache]) -> np.ndarray:
    return initial_states(np.stack([c.ego_velocity for c in caches]), np.stack([c.ego_acceleration for c in caches]),
                          np.array([c.ego_steering for c in caches]), np.array([c.ego_yaw_rate for c in caches]))


def _human_ok(cache: MetricCache) -> bool:
    return bool(np.all(np.isfinite(cache.human_future)))


def simulate_rows(caches: Sequence[MetricCache], trajectories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> states (S, G + 2, 41, 11) for rows [reference, candidates, human] and human_ok (S,)."""
    s, g = trajectories.shape[:2]
    plans = np.empty((s, g + 1, K.PLAN_POSES, 3))
    plans[:, :g] = trajectories
    human_ok = np.array([_human_ok(c) for c in caches], dtype=bool)
    for i, c in enumerate(caches):
        plans[i, g] = c.human_future if human_ok[i] else 0.0
    ref = np.stack([c.reference[: K.NUM_STATES] for c in caches])[:, None]
    poses = np.concatenate([ref, interpolate_plans(plans.reshape(-1, K.PLAN_POSES, 3)).reshape(s, g + 1, K.NUM_STATES, 3)], axis=1)
    init = np.repeat(_initial(caches), g + 2, axis=0)
    states = simulate(poses.reshape(-1, K.NUM_STATES, 3), init).reshape(s, g + 2, K.NUM_STATES, -1)
    return states, human_ok


def comfort_metrics(caches: Sequence[MetricCache], states: np.ndarray, v1: bool, v2: bool) -> dict[str, np.ndarray]:
    """Comfort of (S, R, 41, 11) rows, all scenes in one batch: 'v1/c' and 'v2/hc' as (S, R) floats."""
    s, r = states.shape[:2]
    flat = states.reshape(s * r, K.NUM_STATES, -1)
    out = {}
    if v1:
        out["v1/c"] = comfort_v1(flat).astype(float).reshape(s, r)
    if v2:
        past = np.repeat(np.stack([c.past_states for c in caches]), r, axis=0)
        out["v2/hc"] = history_comfort(flat, past).astype(float).reshape(s, r)
    return out


def raw_scene_metrics(cache: MetricCache, states: np.ndarray, v1: bool, v2: bool,
                      comfort: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Unaggregated sub-metrics of every row of one scene: 'v1/...' and 'v2/...' (R,) arrays.
    `comfort` may carry this scene's rows of comfort_metrics (computed in a batch over scenes)."""
    if comfort is None:
        comfort = {k: v[0] for k, v in comfort_metrics([cache], states[None], v1, v2).items()}
    areas = M.ego_areas(cache, states)
    out: dict[str, np.ndarray] = {}
    dac = (~areas["non_drivable"].any(axis=1)).astype(float)
    raw_progress = M.progress(cache, areas)
    none_ignored = np.zeros(cache.num_agents, dtype=bool)
    # Only agents that come near the rows matter; TTC looks up to 0.9 s ahead at the fastest row speed.
    speed = np.hypot(states[..., 3], states[..., 4]).max() if states.size else 0.0
    near_nc = M.agents_near(cache, areas["centers"], 0.0)
    near_ttc = M.agents_near(cache, areas["centers"], speed * K.TTC_LOOKAHEAD_STEPS[-1] * K.DT)
    if v1:
        nc = M.collisions(cache, states, areas, none_ignored, near_nc)
        out.update({"v1/nc": nc, "v1/dac": dac, "v1/ddc": M.driving_direction(areas, exempt_intersections=False),
                    "v1/progress": raw_progress,
                    "v1/ttc": M.time_to_collision(cache, states, areas, none_ignored, K.NUM_SIM_STEPS, near_ttc),
                    "v1/c": comfort["v1/c"]})
    if v2:
        removed = M.removed_at_start(cache)
        nc = M.collisions(cache, states, areas, removed, near_nc)
        out.update({"v2/nc": nc, "v2/dac": dac, "v2/ddc": M.driving_direction(areas, exempt_intersections=True),
                    "v2/progress": raw_progress,
                    "v2/ttc": M.time_to_collision(cache, states, areas, removed, K.V2_TTC_LAST_STEP, near_ttc),
                    "v2/tlc": M.traffic_lights(cache, areas), "v2/lk": M.lane_keeping(cache, areas),
                    "v2/hc": comfort["v2/hc"]})
    return out


def _fixed_poses(caches: Sequence[MetricCache]) -> np.ndarray:
    """(S, 2, 41, 3) reference and human poses (the human row is a stand-in when the log ends early)."""
    plans = np.stack([c.human_future if _human_ok(c) else np.zeros((K.PLAN_POSES, 3)) for c in caches])
    return np.stack([np.stack([c.reference[: K.NUM_STATES] for c in caches]), interpolate_plans(plans)], axis=1)


def _build_fixed_rows(caches: Sequence[MetricCache]) -> None:
    """Simulate and measure the reference and human rows (v1 and v2) of scenes that lack them, in one
    simulation call, and keep them on each cache (the metric cache stage does this ahead, scene_tables)."""
    if not caches:
        return
    states = simulate(_fixed_poses(caches).reshape(-1, K.NUM_STATES, 3), np.repeat(_initial(caches), 2, axis=0))
    states = states.reshape(len(caches), 2, K.NUM_STATES, STATE_DIM)
    comfort = comfort_metrics(caches, states, True, True)
    for i, c in enumerate(caches):
        rows = raw_scene_metrics(c, states[i], True, True, {k: v[i] for k, v in comfort.items()})
        c.remember("fixed_rows", rows)


def fixed_rows(cache: MetricCache) -> dict[str, np.ndarray]:
    """Raw sub-metrics of the scene's [reference, human] rows, {"v1/nc": (2,), ...}; built once per scene."""
    if cache.recalled("fixed_rows") is None:
        _build_fixed_rows([cache])
    return cache.recalled("fixed_rows")


def _ep_v1(raw: np.ndarray, ref_raw: np.ndarray) -> np.ndarray:
    """raw is already masked by NC * DAC; M = max(reference, candidate) per candidate."""
    best = np.maximum(raw, ref_raw)
    with np.errstate(invalid="ignore", divide="ignore"):
        ep = np.where(best > K.PROGRESS_DISTANCE_THRESHOLD, raw / best, 1.0)
    return ep


def aggregate_v1(cand: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidates' raw v1 sub-metrics (S, G) and the reference row's (S,) -> per-candidate v1 sub-scores."""
    mult = cand["v1/nc"] * cand["v1/dac"]
    ref_masked = (ref["v1/progress"] * ref["v1/nc"] * ref["v1/dac"])[:, None]
    ep = _ep_v1(cand["v1/progress"] * mult, ref_masked)
    ep = np.where(mult == 0.0, 0.0, ep)
    res = {k: cand[f"v1/{k}"] for k in ("nc", "dac", "ddc", "ttc", "c")}
    res["ep"] = ep
    w = K.V1_WEIGHTS
    res["pdms"] = res["nc"] * res["dac"] * (w["ttc"] * res["ttc"] + w["ep"] * ep + w["c"] * res["c"]) / sum(w.values())
    return {f"v1/{k}": v for k, v in res.items()}


def _ep_v2(raw: np.ndarray, ref_raw: np.ndarray) -> np.ndarray:
    best = np.maximum(raw, ref_raw)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(best > K.PROGRESS_DISTANCE_THRESHOLD, np.clip(raw / best, 0.0, 1.0), 1.0)


def epdms(sub: dict[str, np.ndarray], ec_valid: np.ndarray) -> np.ndarray:
    w = K.V2_WEIGHTS
    weighted = w["ep"] * sub["ep"] + w["ttc"] * sub["ttc"] + w["lk"] * sub["lk"] + w["hc"] * sub["hc"]
    ec = np.where(ec_valid, np.nan_to_num(sub["ec"], nan=0.0), 0.0)
    total = np.where(ec_valid, sum(w.values()), sum(w.values()) - w["ec"])
    return sub["nc"] * sub["dac"] * sub["ddc"] * sub["tlc"] * (weighted + w["ec"] * ec) / total


def aggregate_v2(cand: dict[str, np.ndarray], ref: dict[str, np.ndarray], human: dict[str, np.ndarray],
                 ec: np.ndarray, human_filter: np.ndarray) -> dict[str, np.ndarray]:
    """Candidates' raw v2 sub-metrics (S, G), the reference and human rows' (S,), ec (S, G) with nan where no
    predecessor, human_filter (S,): where the human fails a filtered metric, every candidate passes it."""
    ref_raw = ref["v2/progress"][:, None]
    res = {k: cand[f"v2/{k}"] for k in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc")}
    res["ep"] = _ep_v2(cand["v2/progress"], ref_raw)
    human_sub = {k: human[f"v2/{k}"] for k in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc")}
    human_sub["ep"] = _ep_v2(human["v2/progress"], ref["v2/progress"])
    for k in V2_FILTERED:
        res[k] = np.where((human_filter & (human_sub[k] == 0.0))[:, None], 1.0, res[k])
    res["ec"] = ec
    res["epdms"] = epdms(res, np.isfinite(ec))
    return {f"v2/{k}": v for k, v in res.items()}


def predecessors(caches: Sequence[MetricCache]) -> list[int | None]:
    """Index of the scene 0.5 s earlier in the same log within the batch (for EC), else None."""
    by_key = {(c.log_name, c.timestamp_us): i for i, c in enumerate(caches)}
    times: dict[str, list[int]] = {}
    for c in caches:
        times.setdefault(c.log_name, []).append(c.timestamp_us)
    out: list[int | None] = []
    for c in caches:
        prev = [t for t in times[c.log_name] if 0 < c.timestamp_us - t <= K.EC_MAX_DT_US]
        out.append(by_key[(c.log_name, max(prev))] if prev else None)
    return out


def score_trajectories(caches: Sequence[MetricCache], trajectories: np.ndarray, version: str = "both",
                       extended_comfort_pairs: bool = True, human_filter: bool = True) -> dict[str, np.ndarray]:
    """Score (S, G, 8, 3) ego-frame trajectories -> {"v1/pdms": (S, G), "v2/epdms": (S, G), ...}.

    EC pairs candidate g of a scene with candidate g of its predecessor in the batch (same log, 0.5 s
    earlier); without one "v2/ec" is nan and its weight is dropped. Synthetic scenes get no human filter."""
    v1, v2 = _versions(version)
    trajectories = np.asarray(trajectories, dtype=np.float64)
    if trajectories.ndim != 4 or trajectories.shape[0] != len(caches) or trajectories.shape[2:] != (K.PLAN_POSES, 3):
        raise ValueError(f"trajectories must be (S={len(caches)}, G, {K.PLAN_POSES}, 3), got {trajectories.shape}")
    if not np.all(np.isfinite(trajectories)):
        raise ValueError("trajectories contain non-finite values")
    s, g = trajectories.shape[:2]
    # The reference and human rows come precomputed with the metric cache (scene_tables); a cache built in
    # memory, or one whose fields were reassigned, gets them measured here once.
    fixed = [c.recalled("fixed_rows") for c in caches]
    missing = [i for i, f in enumerate(fixed) if f is None]
    _build_fixed_rows([caches[i] for i in missing])
    for i in missing:
        fixed[i] = caches[i].recalled("fixed_rows")
    pick = lambda key, row: np.array([f[key][row] for f in fixed])  # noqa: E731
    states = simulate(interpolate_plans(trajectories.reshape(-1, K.PLAN_POSES, 3)),
                      np.repeat(_initial(caches), g, axis=0)).reshape(s, g, K.NUM_STATES, STATE_DIM)
    cand = candidate_metrics(caches, states, comfort_metrics(caches, states, v1, v2), v1, v2)
    out: dict[str, np.ndarray] = {}
    if v1:
        out.update(aggregate_v1(cand, {k: pick(k, 0) for k in ("v1/nc", "v1/dac", "v1/progress")}))
    if v2:
        ec = np.full((s, g), np.nan)
        prev = predecessors(caches) if extended_comfort_pairs else [None] * s
        has = np.array([i for i, p in enumerate(prev) if p is not None], dtype=np.int64)
        if len(has):
            before = np.array([prev[i] for i in has], dtype=np.int64)
            pairs = extended_comfort(states[has].reshape(-1, K.NUM_STATES, STATE_DIM),
                                     states[before].reshape(-1, K.NUM_STATES, STATE_DIM))
            ec[has] = pairs.astype(float).reshape(len(has), g)
        keys = [f"v2/{k}" for k in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc", "progress")]
        hf = np.array([human_filter and _human_ok(c) and not c.is_synthetic for c in caches], dtype=bool)
        out.update(aggregate_v2(cand, {"v2/progress": pick("v2/progress", 0)}, {k: pick(k, 1) for k in keys}, ec, hf))
    return out
