"""PDM-Closed, the privileged reference planner: route centerline and +-1 m offsets x IDM at fractions of
the speed limit (15 proposals), other agents at constant velocity, each proposal simulated and scored
with PDMS v1, the best one kept. Used to build the reference trajectory stored in every MetricCache."""

from __future__ import annotations

import copy

import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.geometry import project_to_polyline
from drivefine_core.metrics.scorer import raw_scene_metrics
from drivefine_core.metrics.simulator import initial_states, simulate

N_STEPS = K.NUM_OBS_STEPS - 1  # proposals cover 5 s


def _arc(line: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])


def offset_polyline(line: np.ndarray, offset: float) -> np.ndarray:
    """Shift a polyline sideways (left positive) along its vertex normals."""
    d = np.gradient(line, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    return line + offset * np.stack([-d[:, 1], d[:, 0]], axis=1)


def _pose_at(line: np.ndarray, cum: np.ndarray, s: np.ndarray) -> np.ndarray:
    x = np.interp(s, cum, line[:, 0])
    y = np.interp(s, cum, line[:, 1])
    seg = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(line) - 2)
    d = line[seg + 1] - line[seg]
    return np.stack([x, y, np.arctan2(d[..., 1], d[..., 0])], axis=-1)


def constant_velocity_agents(cache: MetricCache) -> MetricCache:
    """Copy of the cache whose agents move on at their t = 0 velocity (agents absent at t = 0 dropped)."""
    out = copy.copy(cache)
    out._runtime = {}
    keep = cache.agent_valid[:, 0]
    boxes = np.repeat(cache.agent_boxes[keep, :1], K.NUM_OBS_STEPS, axis=1)
    vel = np.nan_to_num(cache.agent_velocity[keep, 0])
    t = np.arange(K.NUM_OBS_STEPS) * K.DT
    boxes[..., 0] += vel[:, None, 0] * t
    boxes[..., 1] += vel[:, None, 1] * t
    out.agent_boxes = boxes
    out.agent_valid = np.ones(boxes.shape[:2], dtype=bool)
    out.agent_velocity = np.repeat(vel[:, None], K.NUM_OBS_STEPS, axis=1)
    out.agent_names = [n for n, k in zip(cache.agent_names, keep) if k]
    out.agent_tokens = [n for n, k in zip(cache.agent_tokens, keep) if k]
    return out


def _leaders(cache: MetricCache, line: np.ndarray, cum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step: arc length of every obstacle in the path corridor (N_obs, 51) (inf if none) and speed."""
    n = cache.num_agents
    rows_s, rows_v = [], []
    if n:
        c = np.nan_to_num(cache.agent_boxes[..., :2].reshape(-1, 2), nan=1e6)
        s = project_to_polyline(c, line).reshape(n, -1)
        foot = _pose_at(line, cum, s)
        lat = np.linalg.norm(cache.agent_boxes[..., :2] - foot[..., :2], axis=-1)
        width = cache.agent_boxes[..., 4] / 2.0
        inside = cache.agent_valid & (lat < K.EGO_HALF_WIDTH + width + 0.3)
        along = np.sum(cache.agent_velocity * np.stack([np.cos(foot[..., 2]), np.sin(foot[..., 2])], -1), axis=-1)
        rows_s.append(np.where(inside, s - cache.agent_boxes[..., 3] / 2.0, np.inf))
        rows_v.append(np.nan_to_num(along))
    for li, lane in enumerate(cache.light_lane_index):  # a red on-route light is a wall at the connector entry
        start = project_to_polyline(cache.lane_polygon(int(lane)), line).min()
        rows_s.append(np.where(cache.light_red[li], start, np.inf)[None])
        rows_v.append(np.zeros((1, K.NUM_OBS_STEPS)))
    if not rows_s:
        return np.full((1, K.NUM_OBS_STEPS), np.inf), np.zeros((1, K.NUM_OBS_STEPS))
    return np.concatenate(rows_s), np.concatenate(rows_v)


def idm_proposals(cache: MetricCache, forecast: MetricCache) -> np.ndarray:
    """(15, 51, 3) proposals: offsets {-1, 0, 1} x IDM target speed fractions."""
    limit = cache.speed_limit if np.isfinite(cache.speed_limit) and cache.speed_limit > 0 else K.IDM_FALLBACK_SPEED
    v0 = float(np.linalg.norm(cache.ego_velocity))
    out = []
    for offset in K.LATERAL_OFFSETS:
        line = offset_polyline(forecast.centerline, offset) if offset else forecast.centerline
        cum = _arc(line)
        obs_s, obs_v = _leaders(forecast, line, cum)
        s_start = float(project_to_polyline(np.zeros((1, 2)), line)[0])
        for frac in K.IDM_FRACTIONS:
            target = frac * limit
            s, v = np.full(1, s_start), np.array([v0])
            path = [s_start]
            for t in range(N_STEPS):
                front = s[0] + K.EGO_FRONT
                ahead = obs_s[:, t] > front - 0.5
                gap, lead_v = np.inf, v[0]
                if ahead.any():
                    k = np.argmin(np.where(ahead, obs_s[:, t], np.inf))
                    gap, lead_v = max(obs_s[k, t] - front, 0.01), obs_v[k, t]
                s_star = K.IDM_MIN_GAP + v[0] * K.IDM_HEADWAY + v[0] * (v[0] - lead_v) / (2 * np.sqrt(K.IDM_A_MAX * K.IDM_B))
                free = 1.0 - (v[0] / max(target, 0.1)) ** K.IDM_EXPONENT
                acc = K.IDM_A_MAX * (free - (max(s_star, 0.0) / gap) ** 2)
                acc = np.clip(acc, -2 * K.IDM_B, K.IDM_A_MAX)
                v = np.maximum(v + acc * K.DT, 0.0)
                s = s + v * K.DT
                path.append(s[0])
            poses = _pose_at(line, cum, np.asarray(path))
            poses[0] = 0.0
            out.append(poses)
    return np.stack(out)


def _crop_route(line: np.ndarray, behind: float = 20.0, ahead: float = 250.0) -> np.ndarray:
    """The part of the route around the ego (5 s at any sane speed fits in `ahead`)."""
    cum = _arc(line)
    s0 = float(project_to_polyline(np.zeros((1, 2)), line)[0])
    keep = (cum >= s0 - behind) & (cum <= s0 + ahead)
    first, last = max(int(np.argmax(keep)) - 1, 0), min(len(line) - int(np.argmax(keep[::-1])), len(line) - 1)
    out = line[first : last + 1]
    return out if len(out) >= 2 else line


def pdm_closed(cache: MetricCache) -> np.ndarray:
    """(51, 3) ego-frame PDM-Closed trajectory at 0..5 s (row 0 = origin)."""
    forecast = constant_velocity_agents(cache)
    forecast.centerline = _crop_route(cache.centerline)
    proposals = idm_proposals(cache, forecast)
    init = initial_states(cache.ego_velocity[None], cache.ego_acceleration[None], cache.ego_steering, cache.ego_yaw_rate)
    states = simulate(proposals[:, : K.NUM_STATES], np.repeat(init, len(proposals), axis=0))
    m = raw_scene_metrics(forecast, states, v1=True, v2=False)
    mult = m["v1/nc"] * m["v1/dac"]
    masked = m["v1/progress"] * mult
    best = masked.max()
    ep = masked / best if best > K.PROGRESS_DISTANCE_THRESHOLD else np.where(mult > 0, 1.0, 0.0)
    w = K.V1_WEIGHTS
    pdms = mult * (w["ttc"] * m["v1/ttc"] + w["ep"] * ep + w["c"] * m["v1/c"]) / sum(w.values())
    return proposals[int(np.argmax(pdms))]
