"""First contacts of the (row, agent) pairs for NC and TTC (batch_agents), compiled with numba.

As array code, every (pair, step, look-ahead) box of the batch was tested before the first hit was looked for;
at RL batch sizes most of that work came after the first hit. These kernels walk each pair's steps in the
devkit's order (time-major, then look-ahead) and stop at the first hit, with the bounding-circle prefilter and
the separating-axis arithmetic of geometry.boxes_overlap, which stays the definition: the tests check the
events against it at every step."""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.scene_metrics import _EGO_RADIUS

_LOOK = np.array(K.TTC_LOOKAHEAD_STEPS, dtype=np.int64)
_HL, _HW = float(K.EGO_HALF_LENGTH), float(K.EGO_HALF_WIDTH)


class Agents(NamedTuple):
    """The stacked agents of batch_agents.agent_pairs as the kernels read them; cos / sin of the box headings
    are numpy's, as geometry.boxes_overlap computes them."""

    boxes: np.ndarray  # (N, steps, 5) x, y, heading, ...
    centres: np.ndarray  # (N, steps, 2) box centres, NaN -> 0
    valid: np.ndarray  # (N, steps)
    cos: np.ndarray  # (N, steps)
    sin: np.ndarray
    radius: np.ndarray  # (N,)
    half_length: np.ndarray
    half_width: np.ndarray

    @staticmethod
    def of(ag: dict) -> "Agents":
        h = ag["boxes"][..., 2]
        return Agents(ag["boxes"], ag["centres"], ag["valid"], np.cos(h), np.sin(h), ag["radius"], ag["half_length"],
                      ag["half_width"])


@numba.njit(cache=True, inline="always")
def _separated(dx: float, dy: float, ax: float, ay: float, c1: float, s1: float, c2: float, s2: float, l2: float,
               w2: float) -> bool:
    """One separating axis of geometry.boxes_overlap, ego box first (same operations)."""
    r1 = _HL * abs(c1 * ax + s1 * ay) + _HW * abs(-s1 * ax + c1 * ay)
    r2 = l2 * abs(c2 * ax + s2 * ay) + w2 * abs(-s2 * ax + c2 * ay)
    return abs(dx * ax + dy * ay) > r1 + r2


@numba.njit(cache=True, inline="always")
def _touches(ex: float, ey: float, c1: float, s1: float, k: int, t: int, a: "Agents") -> bool:
    """batch_agents' overlap test of one ego box (centre, cos / sin of its heading) and agent k at observation
    step t: the bounding-circle prefilter on the centres, then the separating axes."""
    if not a.valid[k, t]:
        return False
    dx, dy = a.centres[k, t, 0] - ex, a.centres[k, t, 1] - ey
    if not np.sqrt(dx * dx + dy * dy) <= _EGO_RADIUS + a.radius[k]:
        return False
    dx, dy = a.boxes[k, t, 0] - ex, a.boxes[k, t, 1] - ey
    c2, s2, l2, w2 = a.cos[k, t], a.sin[k, t], a.half_length[k], a.half_width[k]
    return not (_separated(dx, dy, c1, s1, c1, s1, c2, s2, l2, w2) or _separated(dx, dy, -s1, c1, c1, s1, c2, s2, l2, w2)
                or _separated(dx, dy, c2, s2, c1, s1, c2, s2, l2, w2) or _separated(dx, dy, -s2, c2, c1, s1, c2, s2, l2, w2))


@numba.njit(cache=True)
def first_contacts(pair_row: np.ndarray, pair_agent: np.ndarray, centers: np.ndarray, cos: np.ndarray,
                   sin: np.ndarray, a: "Agents") -> np.ndarray:
    """(P,) first step at which each pair's ego box (centers (R, T, 2), cos / sin of the headings (R, T))
    overlaps its agent's observed box at the same step; -1 for none (batch_agents._nc_events)."""
    out = np.full(len(pair_row), -1, dtype=np.int64)
    for p in range(len(pair_row)):
        r, k = pair_row[p], pair_agent[p]
        for t in range(centers.shape[1]):
            if _touches(centers[r, t, 0], centers[r, t, 1], cos[r, t], sin[r, t], k, t, a):
                out[p] = t
                break
    return out


@numba.njit(cache=True)
def first_ttc_hits(pair_row: np.ndarray, pair_agent: np.ndarray, centers: np.ndarray, cos: np.ndarray,
                   sin: np.ndarray, speed: np.ndarray, last_step: int, a: "Agents") -> tuple[np.ndarray, np.ndarray]:
    """(P,) step and look-ahead index of each pair's first TTC hit over steps 0..last_step (time-major, then
    look-ahead), -1 for none: the ego box moved ahead along its heading at its speed (R, T) for look-ahead l
    against the agent's box at step + l; a (nearly) stopped ego tests nothing (batch_agents._ttc_events)."""
    n = len(pair_row)
    tt = np.full(n, -1, dtype=np.int64)
    ll = np.full(n, -1, dtype=np.int64)
    for p in range(n):
        r, k = pair_row[p], pair_agent[p]
        for t in range(last_step + 1):
            v = speed[r, t]
            if not v >= K.TTC_STOPPED_SPEED:
                continue
            ch, sh = cos[r, t], sin[r, t]
            hit = -1
            for j in range(len(_LOOK)):
                shift = v * _LOOK[j] * K.DT
                if _touches(centers[r, t, 0] + shift * ch, centers[r, t, 1] + shift * sh, ch, sh, k, t + _LOOK[j], a):
                    hit = j
                    break
            if hit >= 0:
                tt[p], ll[p] = t, hit
                break
    return tt, ll
