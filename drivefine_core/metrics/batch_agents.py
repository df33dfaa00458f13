"""NC and TTC of the candidate rows of many scenes in one pass (batch_metrics' agent half).

Agents of all scenes are stacked; a (row, agent) pair of the same scene is tested only when the agent's observed
boxes come near the row's bounding box, and v1 / v2 share one overlap test (v2 only drops the agents removed at
t = 0 and the steps after 3.1 s for TTC), so nothing is computed twice. The lane / intersection look-ups that
the fault rules need are made once, for the contact states of both metrics and versions together."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.agent_kernels import Agents, first_contacts, first_ttc_hits
from drivefine_core.metrics.batch_map import polygon_pairs
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.ego_kernel import bounds
from drivefine_core.metrics.geometry import segment_hits_box
from drivefine_core.metrics.scene_index import INTERSECTION, LANE, LANE_ON_ROUTE, SceneIndex
from drivefine_core.metrics.scene_metrics import _EGO_RADIUS, _angles, removed_at_start
from drivefine_core.metrics.simulator import VX, VY, H

_LOOK = np.array(K.TTC_LOOKAHEAD_STEPS)


_FAR = 1e12  # a point off every grid and outside every polygon's bounds: pads the per-scene point lists


def _event_areas(indexes: Sequence[SceneIndex], rows: np.ndarray, corners: np.ndarray, g: int, rr: np.ndarray,
                 tt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """multiple_lanes and rear_in_intersection (scene_metrics.ego_areas) of the states (rr, tt) only."""
    e = len(rr)
    if e == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    scene = rr // g
    order = np.argsort(scene, kind="stable")
    count = np.bincount(scene, minlength=len(indexes))
    slot = np.empty(e, dtype=np.int64)
    slot[order] = np.arange(e) - np.repeat(np.cumsum(count) - count, count)  # rank of the event in its scene
    m = int(count.max())
    pts = np.full((len(indexes), 5 * m, 2), _FAR)
    pts[scene, slot * 4 + np.arange(4)[:, None]] = np.moveaxis(corners[rr, tt], 1, 0)  # 4 corners per event
    pts[scene, 4 * m + slot] = rows[rr, tt, :2]  # the rear axle
    live = np.flatnonzero(count)
    q, p = polygon_pairs([indexes[i].polygons for i in live], pts[live])
    sc, local = live[q // (5 * m)], q % (5 * m)
    sizes = np.array([len(x.poly_kind) for x in indexes])
    width = int(sizes.max())
    kind = np.concatenate([x.poly_kind for x in indexes])[(np.cumsum(sizes) - sizes)[sc] + p]
    lane = (local < 4 * m) & ((kind == LANE) | (kind == LANE_ON_ROUTE))
    event_of = np.full((len(indexes), m), -1)
    event_of[scene, slot] = np.arange(e)
    ev = event_of[sc[lane], local[lane] // 4]
    per_lane = np.bincount(ev * width + p[lane], minlength=e * width).reshape(e, width)
    multiple = (np.count_nonzero(per_lane, axis=1) > 1) & ~(per_lane == 4).any(axis=1)
    rear = (local >= 4 * m) & (kind == INTERSECTION)
    rear_inter = np.zeros(e, dtype=bool)
    rear_inter[event_of[sc[rear], local[rear] - 4 * m]] = True
    return multiple, rear_inter


def agent_pairs(caches: Sequence[MetricCache], indexes: Sequence[SceneIndex], rows: np.ndarray, centers: np.ndarray,
           g: int) -> dict[str, np.ndarray] | None:
    """Stacked agents and the (row, agent) pairs of one scene that can touch: the agent's observed centres
    come within reach (TTC look-ahead at the row's top speed) + both radii of the row's bounding box."""
    counts = np.array([c.num_agents for c in caches])
    if counts.sum() == 0:
        return None
    keep = np.nonzero(counts)[0]
    idxs = [indexes[i] for i in keep]
    cat = lambda name: np.concatenate([getattr(x, name) for x in idxs])  # noqa: E731
    radius, lo_a, hi_a = cat("radius"), cat("agent_lo"), cat("agent_hi")
    scene = np.repeat(keep, counts[keep])
    lo_r, hi_r = bounds(centers)
    speed = np.hypot(rows[..., VX], rows[..., VY]).max(axis=1)
    agent = np.repeat(np.arange(len(scene)), g)
    row = scene[agent] * g + np.tile(np.arange(g), len(scene))
    margin = (speed[row] * _LOOK[-1] * K.DT + _EGO_RADIUS + radius[agent])[:, None]
    near = np.all((lo_a[agent] <= hi_r[row] + margin) & (hi_a[agent] >= lo_r[row] - margin), axis=1)
    row, agent = row[near], agent[near]
    # Only the agents of some pair are stacked (renumbered).
    used, agent = np.unique(agent, return_inverse=True)
    first = np.concatenate([[0], np.cumsum(counts[keep])[:-1]])
    local = used - first[np.searchsorted(first, used, side="right") - 1]
    owner = np.searchsorted(first, used, side="right") - 1
    cut = np.searchsorted(owner, np.arange(len(keep) + 1))
    parts = [(caches[keep[j]], local[cut[j] : cut[j + 1]]) for j in range(len(keep)) if cut[j + 1] > cut[j]]
    boxes = np.concatenate([c.agent_boxes[a] for c, a in parts] or [np.zeros((0, K.NUM_OBS_STEPS, 5))])
    valid = np.concatenate([c.agent_valid[a] for c, a in parts] or [np.zeros((0, K.NUM_OBS_STEPS), dtype=bool)])
    removed = np.concatenate([removed_at_start(caches[i]) for i in keep])
    return {"row": row, "agent": agent, "boxes": boxes, "centres": np.nan_to_num(boxes[..., :2]), "valid": valid,
            "radius": radius[used], "half_length": cat("half_length")[used], "half_width": cat("half_width")[used],
            "stopped": cat("stopped")[used], "is_agent": cat("is_agent")[used], "removed": removed[used]}


def _nc_events(areas: dict, ag: dict, ego: tuple, agents: Agents) -> dict[str, np.ndarray]:
    """Each (row, agent) pair's first contact: rows rr, agents nn, steps tt."""
    pr, pa = ag["row"], ag["agent"]
    first = first_contacts(pr, pa, areas["centers"], *ego, agents)
    k = np.flatnonzero(first >= 0)
    return {"rr": pr[k], "nn": pa[k], "tt": first[k]}


def _nc(rows: np.ndarray, areas: dict, ag: dict, ev: dict, multiple: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NC v1 (every agent) and v2 (without the agents overlapping the ego at t = 0) from the first contacts;
    `multiple`: multiple_lanes at each contact state."""
    nc1, nc2 = np.ones(rows.shape[0]), np.ones(rows.shape[0])
    rr, nn, tt = ev["rr"], ev["nn"], ev["tt"]
    st = rows[rr, tt]
    box = ag["boxes"][nn, tt]
    angle = _angles(st, box[:, :2])
    corners = areas["corners"][rr, tt]
    front = segment_hits_box(corners[:, 0], corners[:, 3], box[:, :2], box[:, 2], ag["half_length"][nn],
                             ag["half_width"][nn])
    lateral_fault = multiple | areas["non_drivable"][rr, tt]
    ego_stopped = np.hypot(st[:, VX], st[:, VY]) <= K.NC_STOPPED_SPEED
    at_fault = ~ego_stopped & (ag["stopped"][nn] | (~(angle > K.BEHIND_ANGLE) & (front | lateral_fault)))
    value = np.where(ag["is_agent"][nn], 0.0, 0.5)
    np.minimum.at(nc1, rr[at_fault], value[at_fault])
    kept = at_fault & ~ag["removed"][nn]
    np.minimum.at(nc2, rr[kept], value[kept])
    return nc1, nc2


def _ttc_events(rows: np.ndarray, areas: dict, ag: dict, versions: list[str], ego: tuple, agents: Agents
                ) -> dict[str, dict[str, np.ndarray]]:
    """Per version, each (row, agent) pair's first TTC hit (time-major, then look-ahead: the devkit's order):
    v1 over steps 0..40, v2 over 0..31 without the agents removed at t = 0. The first hit over 0..40 is v2's
    too when it comes by step 31 (and v2 has none otherwise), so one search serves both."""
    pr, pa = ag["row"], ag["agent"]
    last = K.NUM_SIM_STEPS if "v1" in versions else K.V2_TTC_LAST_STEP
    speed = np.hypot(rows[..., VX], rows[..., VY])
    tt, ll = first_ttc_hits(pr, pa, areas["centers"], *ego, speed, last, agents)
    out = {}
    for version in versions:
        hit = tt >= 0
        if version == "v2":
            hit &= (tt <= K.V2_TTC_LAST_STEP) & ~ag["removed"][pa]
        k = np.flatnonzero(hit)
        out[version] = {"rr": pr[k], "nn": pa[k], "tt": tt[k], "ll": ll[k]}
    return out


def _ttc(rows: np.ndarray, areas: dict, ag: dict, ev: dict, multiple: np.ndarray, rear_inter: np.ndarray) -> np.ndarray:
    rr, nn, tt, ll = ev["rr"], ev["nn"], ev["tt"], ev["ll"]
    angle = _angles(rows[rr, tt], ag["boxes"][nn, tt + _LOOK[ll], :2])
    risky = multiple | areas["non_drivable"][rr, tt] | rear_inter
    critical = (angle < K.AHEAD_ANGLE) | (risky & ~(angle > K.BEHIND_ANGLE))
    ttc = np.ones(rows.shape[0])
    ttc[rr[critical]] = 0.0
    return ttc


def agent_metrics(indexes: Sequence[SceneIndex], rows: np.ndarray, areas: dict, ag: dict | None, g: int, v1: bool,
                   v2: bool) -> dict[str, np.ndarray]:
    """NC and TTC of every row. The lane / intersection look-ups their fault rules need are made once, for
    the contact states of both metrics and versions together."""
    versions = [v for v, on in (("v1", v1), ("v2", v2)) if on]
    if ag is None or not len(ag["row"]):
        return {f"{v}/{m}": np.ones(rows.shape[0]) for v in versions for m in ("nc", "ttc")}
    h = rows[..., H]
    ego, agents = (np.cos(h), np.sin(h)), Agents.of(ag)  # numpy's cos / sin, once for both searches
    events = [_nc_events(areas, ag, ego, agents)]
    ttc_events = _ttc_events(rows, areas, ag, versions, ego, agents)
    events += [ttc_events[v] for v in versions]
    multiple, rear = _event_areas(indexes, rows, areas["corners"], g, np.concatenate([e["rr"] for e in events]),
                                  np.concatenate([e["tt"] for e in events]))
    cut = np.cumsum([0] + [len(e["rr"]) for e in events])
    nc1, nc2 = _nc(rows, areas, ag, events[0], multiple[: cut[1]])
    out = {"v1/nc": nc1, "v2/nc": nc2}
    for j, v in enumerate(versions):
        out[f"{v}/ttc"] = _ttc(rows, areas, ag, events[j + 1], multiple[cut[j + 1] : cut[j + 2]], rear[cut[j + 1] : cut[j + 2]])
    return {k: x for k, x in out.items() if k.split("/")[0] in versions}
