"""Negative and recovery samples for SpanVLA's GRPO reward.

Negatives are mined with the scorer: perturbations of the logged human trajectory (lateral swerves that ramp
in over 2 s, and speed changes along the human path: faster runs into lead vehicles and red lights) are scored,
and the one closest to the human among those with a failed multiplier (NC = 0, DAC = 0, or v2 TLC = 0) becomes
the scene's negative: a known-bad trajectory that is near what a policy might plausibly output.

Recovery: from a (possibly laterally / heading-perturbed) start, back to the route centreline of the
MetricCache over `converge_s` (smoothstep blend of the lateral offset), keeping the human's progress per pose.

Closeness (bounded L2): c(a, b) = exp(-mean_k ||a_k - b_k||^2 / sigma^2) over the 8 poses' xy. It lies in
(0, 1], is 1 only at b, has a smooth gradient everywhere and fades to ~0 beyond ~2 sigma (sigma = 2 m by
default: a lane width), so the bonus / penalty acts only near the sample and cannot dominate the driving
reward elsewhere. Heading is left out: it follows from the positions and has other units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.geometry import project_to_polyline

PLAN_DT = 0.5
TIMES = np.arange(1, 9) * PLAN_DT


def closeness(trajectories: np.ndarray, reference: np.ndarray, sigma: float) -> np.ndarray:
    """(..., 8, 3) vs (8, 3) (or broadcastable (..., 8, 3)) -> (...) in (0, 1]."""
    d2 = np.sum((trajectories[..., :2] - reference[..., :2]) ** 2, axis=-1).mean(axis=-1)
    return np.exp(-d2 / sigma**2)


def _arc(poses: np.ndarray) -> np.ndarray:
    pts = np.concatenate([np.zeros((1, 2)), poses[:, :2]])
    return np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))


def _along(poses: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Poses at arc lengths along [origin, poses], extrapolated straight past the end."""
    pts = np.concatenate([np.zeros((1, 3)), poses])
    cum = np.concatenate([[0.0], _arc(poses)])
    out = np.empty((len(distances), 3))
    for c in range(3):
        out[:, c] = np.interp(distances, cum, pts[:, c])
    beyond = distances > cum[-1]
    if beyond.any():
        h = pts[-1, 2]
        extra = distances[beyond] - cum[-1]
        out[beyond, 0] = pts[-1, 0] + np.cos(h) * extra
        out[beyond, 1] = pts[-1, 1] + np.sin(h) * extra
        out[beyond, 2] = h
    return out


def candidate_perturbations(human: np.ndarray, shifts_m: Sequence[float], speed_factors: Sequence[float]) -> np.ndarray:
    """(C, 8, 3): lateral swerves (offset ramping in over 2 s, perpendicular to the path) and speed-scaled
    versions of the human trajectory."""
    cands = []
    ramp = np.clip(TIMES / 2.0, 0, 1)
    for shift in shifts_m:
        c = human.copy()
        c[:, 0] -= np.sin(human[:, 2]) * shift * ramp
        c[:, 1] += np.cos(human[:, 2]) * shift * ramp
        cands.append(c)
    arc = _arc(human)
    for f in speed_factors:
        cands.append(_along(human, arc * f) if arc[-1] > 0 else human.copy())
    return np.stack(cands) if cands else np.zeros((0, 8, 3))


FAIL_KEYS = ("v1/nc", "v1/dac", "v2/tlc")


def is_failure(scores: dict[str, np.ndarray]) -> np.ndarray:
    """(S, C) True where a multiplier the negative mining looks for is 0."""
    bad = None
    for key in FAIL_KEYS:
        if key in scores:
            hit = np.nan_to_num(scores[key], nan=1.0) == 0
            bad = hit if bad is None else bad | hit
    if bad is None:
        raise ValueError(f"scores hold none of the failure keys {FAIL_KEYS}: {sorted(scores)}")
    return bad


def mine_negatives(caches: Sequence[MetricCache], shifts_m: Sequence[float], speed_factors: Sequence[float],
                   scorer=None) -> list[np.ndarray | None]:
    """Per scene: the failing perturbation closest to the human trajectory, or None (no human trajectory,
    or no perturbation fails). `scorer(caches, (S, C, 8, 3)) -> dict` defaults to the metrics scorer."""
    if scorer is None:
        from drivefine_core.metrics.scorer import score_trajectories

        def scorer(c, t):  # noqa: ANN001 - local default
            return score_trajectories(c, t, version="both")

    usable = [i for i, c in enumerate(caches) if np.all(np.isfinite(c.human_future))]
    out: list[np.ndarray | None] = [None] * len(caches)
    if not usable:
        return out
    cands = np.stack([candidate_perturbations(caches[i].human_future, shifts_m, speed_factors) for i in usable])
    if cands.shape[1] == 0:
        return out
    fail = is_failure(scorer([caches[i] for i in usable], cands))
    for row, i in enumerate(usable):
        if fail[row].any():
            d = np.linalg.norm(cands[row, :, :, :2] - caches[i].human_future[None, :, :2], axis=-1).mean(-1)
            d[~fail[row]] = np.inf
            out[i] = cands[row, int(np.argmin(d))]
    return out


def _frame(poses: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cache-frame poses -> the frame of `start` (x forward, y left)."""
    c, s = np.cos(start[2]), np.sin(start[2])
    d = poses[:, :2] - start[:2]
    h = np.arctan2(np.sin(poses[:, 2] - start[2]), np.cos(poses[:, 2] - start[2]))
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], h], -1)


def recovery_trajectory(cache: MetricCache, start: np.ndarray | None = None, converge_s: float = 2.0) -> np.ndarray:
    """(8, 3) poses in the frame of `start` ((3,) pose in the cache's ego frame; default the ego itself) that
    return to the route centreline. Progress per pose follows the human trajectory (else the ego speed)."""
    start = np.zeros(3) if start is None else np.asarray(start, dtype=np.float64)
    line = cache.centerline
    seg = np.diff(line, axis=0)
    keep = np.concatenate([[True], np.linalg.norm(seg, axis=1) > 1e-9])  # drop repeated points
    line = line[keep]
    seg = np.diff(line, axis=0)
    if len(seg) == 0:
        raise ValueError(f"metric cache {cache.token!r} field 'centerline': all points coincide")
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))])
    proj = project_to_polyline(start[None, :2], line)
    s0 = float(np.asarray(proj).reshape(-1)[0])
    if np.all(np.isfinite(cache.human_future)):
        progress = _arc(cache.human_future)
    else:
        progress = float(np.hypot(*cache.ego_velocity)) * TIMES
    s = np.clip(s0 + progress, 0, cum[-1])
    base = np.stack([np.interp(s, cum, line[:, 0]), np.interp(s, cum, line[:, 1])], -1)
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    tangent = seg[k] / np.linalg.norm(seg[k], axis=1, keepdims=True)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], -1)
    k0 = int(np.clip(np.searchsorted(cum, s0, side="right") - 1, 0, len(seg) - 1))
    p0 = line[k0] + (s0 - cum[k0]) * seg[k0] / np.linalg.norm(seg[k0])
    n0 = np.array([-seg[k0, 1], seg[k0, 0]]) / np.linalg.norm(seg[k0])
    offset0 = float(np.dot(start[:2] - p0, n0))  # signed lateral offset of the start (left positive)
    x = np.clip(TIMES / converge_s, 0, 1)
    blend = 1 - x * x * (3 - 2 * x)  # smoothstep 1 -> 0
    pts = base + normal * (offset0 * blend)[:, None]
    prev = np.concatenate([start[None, :2], pts[:-1]])
    heading = np.arctan2(pts[:, 1] - prev[:, 1], pts[:, 0] - prev[:, 0])
    still = np.linalg.norm(pts - prev, axis=1) < 1e-3
    heading[still] = start[2]
    return _frame(np.concatenate([pts, heading[:, None]], -1), start)


@dataclass
class SceneTargets:
    """What the SpanVLA reward compares with, per scene."""

    negative: np.ndarray | None  # (8, 3) ego frame
    recovery: np.ndarray  # (8, 3) ego frame


def build_scene_targets(caches: Sequence[MetricCache], shifts_m: Sequence[float], speed_factors: Sequence[float],
                        converge_s: float, scorer=None) -> dict[str, SceneTargets]:
    negs = mine_negatives(caches, shifts_m, speed_factors, scorer)
    return {c.token: SceneTargets(n, recovery_trajectory(c, None, converge_s)) for c, n in zip(caches, negs)}


def shaped_reward(driving: np.ndarray, trajectories: np.ndarray, targets: Sequence[SceneTargets],
                  w_negative: float, w_recovery: float, sigma: float) -> tuple[np.ndarray, dict[str, float]]:
    """r = r_driving - w_N * c(traj, negative) + w_R * c(traj, recovery); (S, G) each."""
    neg = np.zeros_like(driving)
    rec = np.zeros_like(driving)
    for i, t in enumerate(targets):
        if t.negative is not None:
            neg[i] = closeness(trajectories[i], t.negative, sigma)
        rec[i] = closeness(trajectories[i], t.recovery, sigma)
    r = driving - w_negative * neg + w_recovery * rec
    return r, {"r_driving": float(driving.mean()), "r_negative": float(neg.mean()), "r_recovery": float(rec.mean())}
