"""10 Hz traffic simulation of one log, recorded at 2 Hz.

Vehicles follow their dense paths with IDM; leaders are whatever lies in the corridor ahead (vehicles not
coming head-on, pedestrians), plus red / yellow lights as stopped leaders at the stop line. The ego steers
with pure pursuit on a kinematic bicycle, so its log is a tracked, not a replayed, path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivefine_core.data.synthetic.agents import CUT_IN, EGO_REAR_TO_CENTER, Cast
from drivefine_core.data.synthetic.lights import GREEN, RED, YELLOW, LightTable, states, walk_signal
from drivefine_core.data.synthetic.routes import STEP_M

DT = 0.1
FRAME_EVERY = 5  # 10 Hz -> 2 Hz
WHEELBASE = 3.089
IDM_S0, IDM_T, IDM_B, IDM_DELTA = 2.0, 1.4, 2.5, 4
A_MIN = -8.0
LOOK_STRIDE, LOOK_K = 4, 30  # corridor samples every 2 m, 60 m ahead
CORRIDOR_R = {"vehicle": 1.8, "pedestrian": 2.3}
CUT_IN_BEHIND_M = 6.0  # a cut-in appears in the next lane, just behind the ego (out of the front camera)
CUT_IN_MARGIN_M = 3.0  # it merges once its rear is this far ahead of the ego's front
MERGE_MARGIN_M = 1.5  # converging connectors touch before their common end
REACH_M = LOOK_K * LOOK_STRIDE * STEP_M + 3.0


@dataclass
class SimResult:
    times_s: np.ndarray  # (F,) log time of each frame, 0.5 s apart
    ego_xy: np.ndarray  # (F, 2) rear axle
    ego_heading: np.ndarray
    ego_speed: np.ndarray
    ego_accel: np.ndarray  # longitudinal
    ego_yaw_rate: np.ndarray
    ego_s: np.ndarray  # rear axle arc length along the ego path
    veh_xy: np.ndarray  # (F, N, 2) box centres; row 0 is the ego's centre
    veh_heading: np.ndarray
    veh_speed: np.ndarray
    veh_active: np.ndarray  # (F, N) bool
    ped_xy: np.ndarray  # (F, P, 2)
    ped_heading: np.ndarray
    ped_speed: np.ndarray
    light_states: np.ndarray  # (F, n_lights)
    lead_gap: np.ndarray  # (F, N) bumper gap to the vehicle / pedestrian / merge leader (inf: none)
    lead_index: np.ndarray  # (F, N) obstacle index of that leader (>= N: a pedestrian)
    stop_gap: np.ndarray  # (F, N) distance to a stop line that holds the vehicle (inf: none)


def _pad(lines: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    n_max = max([len(x) for x in lines] + [2])
    out = np.zeros((len(lines), n_max, width))
    for i, x in enumerate(lines):
        x = x.reshape(len(x), width)
        out[i, : len(x)] = x
        out[i, len(x):] = x[-1]
    return out, np.array([len(x) for x in lines], int)


def _sample(arr: np.ndarray, n: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation at arc length s of row i of padded (R, L, ...) arrays."""
    u = s / STEP_M
    i0 = np.clip(np.floor(u).astype(int), 0, np.maximum(n - 2, 0))
    f = np.clip(u - i0, 0.0, 1.0)
    rows = np.arange(len(s))
    return arr[rows, i0] * (1 - f)[:, None] + arr[rows, np.minimum(i0 + 1, n - 1)] * f[:, None], i0, rows


def _idm_interaction(v: np.ndarray, gap: np.ndarray, v_lead: np.ndarray, a_max: np.ndarray) -> np.ndarray:
    s_star = IDM_S0 + np.maximum(0.0, v * IDM_T + v * (v - v_lead) / (2 * np.sqrt(a_max * IDM_B)))
    out = -a_max * (s_star / np.maximum(gap, 0.05)) ** 2
    return np.where(np.isfinite(gap), out, 0.0)


def _lane_change_hold(cast: Cast, ego_front: float, xy: np.ndarray, v: np.ndarray, ev: float, eh: float,
                      half_len: np.ndarray, active: np.ndarray) -> float:
    """Distance to the start of the ego's next lane change while the target lane is taken beside it, else inf."""
    for start, _, target in cast.ego_lane_changes:
        if ego_front > start:
            continue
        if ego_front < start - 30.0:
            return np.inf
        others = np.flatnonzero(active & (np.arange(len(v)) != 0))
        rel = xy[others] - xy[0]
        lon = rel[:, 0] * np.cos(eh) + rel[:, 1] * np.sin(eh)
        reach = half_len[others] + half_len[0] + 6.0
        close = (lon < reach) & (lon > -(reach + 3.0 * np.maximum(v[others] - ev, 0.0)))
        for j in others[close]:
            if np.min(((target - xy[j]) ** 2).sum(axis=1)) < 1.9**2:
                return max(start - ego_front, 0.05)
        return np.inf
    return np.inf


def simulate(cast: Cast, lights: LightTable, n_frames: int, rng: np.random.Generator,
             warmup_s: float = 4.0) -> SimResult:
    V, P = cast.vehicles, cast.pedestrians
    N = len(V.paths)
    PX, PN = _pad([p.xy for p in V.paths], 2)
    PH = _pad([p.heading for p in V.paths], 1)[0][..., 0]
    PNRM = np.stack([-np.sin(PH), np.cos(PH)], axis=-1)  # left normals of the path samples
    PV = _pad([np.minimum(p.v_allow, 1e3) for p in V.paths], 1)[0][..., 0]
    PL = _pad([p.speed_limit for p in V.paths], 1)[0][..., 0]
    s_max = max(len(p.stops) for p in V.paths) or 1
    SS = np.full((N, s_max), np.inf)
    SL = np.full((N, s_max), -1)
    for i, p in enumerate(V.paths):
        for j, (s_stop, conn) in enumerate(p.stops):
            SS[i, j], SL[i, j] = s_stop, lights.index.get(conn, -1)
    m_max = max(len(p.merges) for p in V.paths) or 1
    MS = np.full((N, m_max), np.inf)
    ML = np.full((N, m_max), -1)
    lane_code: dict[str, int] = {}
    for i, p in enumerate(V.paths):
        for j, (s_merge, lane) in enumerate(p.merges):
            MS[i, j], ML[i, j] = s_merge, lane_code.setdefault(lane, len(lane_code))
    # which signalised movement (light column) each path sample is on; -1: none
    n_light = len(lights.connector_ids)
    PLC = np.full(PX.shape[:2], n_light, int)
    for i, p in enumerate(V.paths):
        col = np.array([lights.index.get(e, n_light) for e in p.elements])
        PLC[i, : len(p.elem)] = col[p.elem]
    inter_names = sorted(set(lights.intersection_of))
    light_inter = np.array([inter_names.index(x) for x in lights.intersection_of] + [len(inter_names)], int)
    light_phase = np.concatenate([lights.phase_of, [0]]).astype(int)
    SL_fix = np.where(SL < 0, n_light, SL)
    n_steps = int(round((warmup_s + (n_frames - 1) * 0.5) / DT)) + 1
    times = np.arange(n_steps) * DT - warmup_s
    LS = states(lights, times) if lights.connector_ids else np.zeros((n_steps, 0), np.int8)
    LS = np.concatenate([LS, np.full((n_steps, 1), GREEN, np.int8)], axis=1)  # column -1: no light
    half_len = V.dims[:, 0] / 2
    a_max = np.where(np.arange(N) == 0, 1.6, rng.uniform(1.2, 1.8, N))
    end_s = (PN - 1) * STEP_M

    s, v, d = V.s0.astype(float).copy(), V.v0.astype(float).copy(), V.offset0.astype(float).copy()
    active = V.kind != CUT_IN
    cut_done = active.copy()  # only cut-ins wait to appear
    merge_t = np.full(N, np.nan)
    ego_path = V.paths[0]
    ex, ey = ego_path.xy[0]
    eh, ev, edelta, e_idx = float(ego_path.heading[0]), float(v[0]), 0.0, 0

    # pedestrians
    n_ped = len(P.lines)
    QX, QN = _pad(P.lines, 2) if n_ped else (np.zeros((0, 2, 2)), np.zeros(0, int))
    QH = np.zeros(QX.shape[:2])
    for i, line in enumerate(P.lines):
        QH[i, : len(line)] = np.arctan2(*np.gradient(line, axis=0)[:, ::-1].T)
        QH[i, len(line):] = QH[i, len(line) - 1]
    ps, pdir = P.s0.astype(float).copy(), P.direction.astype(float).copy()
    walking = ~P.crossing.copy()
    walk = np.zeros((n_steps, n_ped), bool)
    for i in np.flatnonzero(P.crossing):
        walk[:, i] = walk_signal(P.signal[i][0], P.signal[i][1], times)
    q_end = (QN - 1) * STEP_M

    warm_steps = int(round(warmup_s / DT))
    rec_steps = set(range(warm_steps, n_steps, FRAME_EVERY))
    rec: dict[str, list] = {k: [] for k in ("ego_xy", "ego_heading", "ego_speed", "ego_accel", "ego_yaw_rate", "ego_s",
                                            "veh_xy", "veh_heading", "veh_speed", "veh_active", "ped_xy",
                                            "ped_heading", "ped_speed", "light_states",
                                            "lead_gap", "lead_index", "stop_gap")}
    ego_a, ego_w = 0.0, 0.0
    for step in range(n_steps):
        t = times[step]
        # --- where everyone is now
        base, i0, rows = _sample(PX, PN, s)
        h = PH[rows, i0]
        xy = base + d[:, None] * np.stack([-np.sin(h), np.cos(h)], axis=1)
        xy[0] = (ex + EGO_REAR_TO_CENTER * np.cos(eh), ey + EGO_REAR_TO_CENTER * np.sin(eh))
        h[0] = eh
        qbase, qi0, qrows = _sample(QX, QN, ps) if n_ped else (np.zeros((0, 2)), np.zeros(0, int), np.zeros(0, int))
        qh = QH[qrows, qi0] + np.where(pdir < 0, np.pi, 0.0)
        q_speed = np.where(walking, P.speed, 0.0)
        if step in rec_steps:
            rec["ego_xy"].append((ex, ey)), rec["ego_heading"].append(eh), rec["ego_speed"].append(ev)
            rec["ego_accel"].append(ego_a), rec["ego_yaw_rate"].append(ego_w), rec["ego_s"].append(e_idx * STEP_M)
            rec["veh_xy"].append(xy.copy()), rec["veh_heading"].append(h.copy())
            rec["veh_speed"].append(np.where(np.arange(N) == 0, ev, v)), rec["veh_active"].append(active.copy())
            rec["ped_xy"].append(qbase.copy()), rec["ped_heading"].append(qh), rec["ped_speed"].append(q_speed)
            rec["light_states"].append(LS[step, :-1].copy())
        # --- leaders in the corridor ahead
        kidx = np.minimum(i0[:, None] + LOOK_STRIDE * np.arange(1, LOOK_K + 1)[None, :], (PN - 1)[:, None])
        pts = PX[rows[:, None], kidx]
        if np.any(d != 0):
            pts = pts + d[:, None, None] * PNRM[rows[:, None], kidx]
        obs = np.concatenate([xy, qbase])
        obs_h = np.concatenate([h, qh])
        obs_v = np.concatenate([np.where(np.arange(N) == 0, ev, v), q_speed])
        obs_half = np.concatenate([half_len, np.full(n_ped, 0.3)])
        obs_ok = np.concatenate([active, P.crossing])  # kerbside walkers never enter a lane
        is_ped = np.arange(N + n_ped) >= N
        r2 = np.where(is_ped, CORRIDOR_R["pedestrian"], CORRIDOR_R["vehicle"]) ** 2
        # only pairs close enough to matter, then their distance to every corridor sample
        rel = obs[None, :, :] - xy[:, None, :]
        near = (rel**2).sum(-1) < REACH_M**2
        near &= rel[..., 0] * np.cos(h)[:, None] + rel[..., 1] * np.sin(h)[:, None] > -2.0  # not behind
        near &= obs_ok[None, :] & (active | (rows == 0))[:, None]
        near[rows, rows] = False
        I, M = np.nonzero(near)
        d2 = ((pts[I] - obs[M][:, None, :]) ** 2).sum(-1)  # (pairs, K)
        facing = (np.cos(obs_h[M] - h[I]) > -0.3) | is_ped[M]  # not head-on traffic
        hit = (d2 < r2[M][:, None]) & facing[:, None]
        first = np.argmax(hit, axis=1)
        gaps = np.where(hit.any(axis=1), (first + 1) * LOOK_STRIDE * STEP_M - half_len[I] - obs_half[M], np.inf)
        order = np.lexsort((gaps, I))
        uniq, at = np.unique(I[order], return_index=True)
        gap_v = np.full(N, np.inf)
        lead = np.zeros(N, int)
        gap_v[uniq] = gaps[order][at]
        lead[uniq] = M[order][at]
        v_lead = np.where(is_ped[lead], 0.0, obs_v[lead] * np.cos(obs_h[lead] - h))
        # --- lights: stopped leader at the stop line unless it is too late to stop
        front = s + half_len
        g = SS - front[:, None]
        st = LS[step][SL]
        vv = (v**2)[:, None]
        slow = (v < 2.0)[:, None]  # nearly stopped at the line: a red holds it even if it crept over
        red_hold = (st == RED) & (((g > vv / 12) & (g > -1.0)) | (slow & (g > -0.6)))
        need = np.isfinite(SS) & (red_hold | ((st == YELLOW) & (g > vv / 6) & (g > -1.0)))
        # a green light still waits until crossing movements have cleared the junction
        on = PLC[rows, i0]
        on_ok = (on < n_light) & (active | (rows == 0))
        occ = np.zeros((len(inter_names) + 1, 4), int)
        np.add.at(occ, (light_inter[on[on_ok]], light_phase[on[on_ok]]), 1)
        li, lp = light_inter[SL_fix], light_phase[SL_fix]
        busy = (occ[li].sum(-1) - occ[li, lp]) > 0
        need |= np.isfinite(SS) & (SL >= 0) & busy & (g > vv / 6) & (g > -1.0)
        gap_s = np.where(need, g, np.inf).min(axis=1)
        gap_end = np.where(np.arange(N) == 0, end_s - front - 3.0, np.inf)
        gap_end[0] = min(gap_end[0], _lane_change_hold(cast, float(front[0]), xy, v, ev, eh, half_len, active))
        # --- merges: vehicles heading for the same lane queue by their distance to where they join it
        gm = MS - s[:, None]
        gm = np.where(gm > -(half_len[:, None] + 8.0), gm, np.inf)
        jm = np.argmin(gm, axis=1)
        dist_m = gm[rows, jm]
        held = gap_s < dist_m  # waiting at a light before its merge: not in the queue yet
        cand = np.flatnonzero(np.isfinite(dist_m) & (dist_m < 45.0) & (active | (rows == 0)) & ~held)
        gap_m = np.full(N, np.inf)
        v_m = np.zeros(N)
        if len(cand) > 1:
            code = ML[cand, jm[cand]]
            order = cand[np.lexsort((dist_m[cand], code))]
            same = ML[order[1:], jm[order[1:]]] == ML[order[:-1], jm[order[:-1]]]
            fol, led = order[1:][same], order[:-1][same]
            gap_m[fol] = dist_m[fol] - dist_m[led] - half_len[fol] - half_len[led] - MERGE_MARGIN_M
            v_m[fol] = np.where(led == 0, ev, v[led])
        if step in rec_steps:
            rec["lead_gap"].append(np.minimum(gap_v, gap_m)), rec["stop_gap"].append(gap_s)
            rec["lead_index"].append(np.where(gap_v <= gap_m, lead, -1))
        # --- IDM
        limit = V.speed_factor * PL[rows, i0]
        v0 = np.where(s < V.slow_until, V.slow_speed, limit)
        v0 = np.maximum(np.minimum(v0, PV[rows, i0]), 1.0)
        vv1 = np.where(np.arange(N) == 0, ev, v)
        inter = np.minimum(_idm_interaction(vv1, gap_v, v_lead, a_max), _idm_interaction(vv1, gap_s, 0.0, a_max))
        inter = np.minimum(inter, _idm_interaction(vv1, gap_end, 0.0, a_max))
        inter = np.minimum(inter, _idm_interaction(vv1, gap_m, v_m, a_max))
        acc = np.clip(a_max * (1 - (vv1 / v0) ** IDM_DELTA) + inter, A_MIN, a_max)
        # --- integrate traffic
        v_new = np.maximum(0.0, v + acc * DT)
        s = np.where(active, s + 0.5 * (v + v_new) * DT, s)
        v = np.where(active, v_new, v)
        active &= s < end_s - 1.0
        # --- ego: pure pursuit + kinematic bicycle
        ego_a = float(acc[0]) if ev + acc[0] * DT > 0 else -ev / DT
        ev_new = max(0.0, ev + acc[0] * DT)
        look = float(np.clip(3.0 + 0.5 * ev, 4.0, 12.0))
        tx, ty = ego_path.point(e_idx * STEP_M + look)
        lx = np.cos(eh) * (tx - ex) + np.sin(eh) * (ty - ey)
        ly = -np.sin(eh) * (tx - ex) + np.cos(eh) * (ty - ey)
        alpha = np.arctan2(ly, lx)
        cmd = float(np.clip(np.arctan(2 * WHEELBASE * np.sin(alpha) / look), -0.6, 0.6))
        edelta += (cmd - edelta) * min(1.0, DT / 0.15)
        vm = 0.5 * (ev + ev_new)
        ego_w = vm * np.tan(edelta) / WHEELBASE
        ex, ey = ex + vm * np.cos(eh + 0.5 * ego_w * DT) * DT, ey + vm * np.sin(eh + 0.5 * ego_w * DT) * DT
        eh = float((eh + ego_w * DT + np.pi) % (2 * np.pi) - np.pi)
        ev = ev_new
        lo = max(0, e_idx - 4)
        win = ego_path.xy[lo : e_idx + 40]
        e_idx = lo + int(np.argmin(((win - (ex, ey)) ** 2).sum(axis=1)))
        s[0], v[0] = e_idx * STEP_M + EGO_REAR_TO_CENTER, ev
        # --- cut-ins: appear in the next lane behind the ego, merge once ahead of it
        for i in np.flatnonzero(~cut_done):
            lo_w, hi_w = V.window[i]
            if s[0] > hi_w - 70:
                cut_done[i] = True
            elif s[0] >= lo_w + 10:
                s_spawn = s[0] - CUT_IN_BEHIND_M
                p, j0, _ = _sample(PX[i : i + 1], PN[i : i + 1], np.array([s_spawn]))
                hh = PH[i, j0[0]]
                spot = p[0] + d[i] * np.array([-np.sin(hh), np.cos(hh)])
                others = active & (rows != 0)
                if np.all(np.linalg.norm(xy[others] - spot, axis=1) > 9.0):
                    s[i], v[i], active[i], cut_done[i] = s_spawn, ev + 4.0, True, True
        cut = (V.kind == CUT_IN) & active
        for i in np.flatnonzero(cut & np.isnan(merge_t)):
            room = gap_v[0] - (s[i] - s[0]) > half_len[i] + 10.0  # the ego's leader is well ahead of the gap
            if s[i] - s[0] >= half_len[i] + half_len[0] + CUT_IN_MARGIN_M and s[i] < V.window[i, 1] - 20 and room:
                merge_t[i] = t
            elif s[i] >= V.window[i, 1] - 20:
                active[i] = False  # never got ahead: turn off before the junction
        u = np.clip((t - merge_t) / 3.0, 0.0, 1.0)
        d = np.where(np.isnan(merge_t), d, V.offset0 * (1 - u * u * (3 - 2 * u)))
        # --- pedestrians
        if n_ped:
            walking |= P.crossing & walk[step]
            ahead = qbase + 1.2 * np.stack([np.cos(qh), np.sin(qh)], axis=1)
            rel = ahead[:, None, :] - xy[None, :, :]
            lon = np.abs(rel[..., 0] * np.cos(h) + rel[..., 1] * np.sin(h))
            lat = np.abs(-rel[..., 0] * np.sin(h) + rel[..., 1] * np.cos(h))
            blocked = ((lon < half_len + 0.6) & (lat < V.dims[:, 1] / 2 + 0.6) & (active | (rows == 0))).any(axis=1)
            ps = ps + pdir * P.speed * DT * (walking & ~blocked)
            over, under = ps >= q_end, ps <= 0
            stop_cross = P.crossing & (over | under) & walking
            walking &= ~stop_cross
            pdir = np.where(over, -1.0, np.where(under, 1.0, pdir))
            ps = np.clip(ps, 0.0, q_end)
    arrays = {k: np.asarray(val) for k, val in rec.items()}
    return SimResult(times_s=np.arange(len(arrays["ego_speed"])) * 0.5, **arrays)
