"""The 40 sequential steps of the PDM simulator (LQR tracker + kinematic bicycle), compiled with numba.

simulator.simulate fits the velocity and curvature profiles in numpy (batched BLAS / LAPACK) and hands the
step loop to `track`, one trajectory at a time: as array code every one of the 40 steps made some forty
temporaries of the batch's size, which cost more than the arithmetic. The arithmetic is the same as the
array version's, operation by operation, including numpy's summation order for the horizon sums (`_np_sum`),
so the states agree with it to the last bit where the two libms agree on sin / cos / tan.
"""

from __future__ import annotations

import numba
import numpy as np

from drivefine_core.metrics import constants as K

# State vector layout (rear axle, ego frame of the scene); simulator.py names the same indices.
_X, _Y, _H, _VX, _VY, _AX, _AY, _STEER, _STEER_RATE, _YAW_RATE, _YAW_ACC = range(11)
_PI = np.pi
_TWO_PI = 2 * np.pi
_Q_LAT = (float(K.Q_LATERAL[0]), float(K.Q_LATERAL[1]), float(K.Q_LATERAL[2]))


@numba.njit(cache=True, inline="always")
def _wrap(a: float) -> float:
    return (a + _PI) % _TWO_PI - _PI


@numba.njit(cache=True)
def _np_sum(x: np.ndarray, n: int) -> float:
    """sum(x[:n]) in numpy's order for n <= 128 (its pairwise sum: eight running partial sums, combined as a
    tree, then the remainder in order), so that results equal np.sum's."""
    if n < 8:
        s = 0.0
        for i in range(n):
            s += x[i]
        return s
    r0, r1, r2, r3, r4, r5, r6, r7 = x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
    i = 8
    while i < n - n % 8:
        r0 += x[i]
        r1 += x[i + 1]
        r2 += x[i + 2]
        r3 += x[i + 3]
        r4 += x[i + 4]
        r5 += x[i + 5]
        r6 += x[i + 6]
        r7 += x[i + 7]
        i += 8
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        s += x[i]
        i += 1
    return s


@numba.njit(cache=True)
def track(ref_poses: np.ndarray, velocity: np.ndarray, curvature: np.ndarray, init: np.ndarray) -> np.ndarray:
    """(B, N, 3) reference poses, their (B, N-1) velocity and curvature profiles and (B, 11) initial states ->
    (B, N, 11) states, tracked step by step (simulator._lqr_commands then simulator._bicycle_step)."""
    b, n = ref_poses.shape[0], ref_poses.shape[1]
    hz, dt, last = K.TRACKING_HORIZON, K.DT, n - 2
    states = np.empty((b, n, 11))
    a = np.empty(hz)
    ahe = np.empty(hz)
    abhe = np.empty(hz)
    he = np.empty(hz + 1)
    bhe = np.empty(hz + 1)
    b_lon = hz * dt
    for r in range(b):
        states[r, 0] = init[r]
        for i in range(n - 1):
            s = states[r, i]
            # -- tracker: longitudinal
            ref_v = velocity[r, min(i + hz, last)]
            v0 = s[_VX]
            stop = (ref_v <= K.STOPPING_VELOCITY) and (v0 <= K.STOPPING_VELOCITY)
            if stop:
                accel = -K.STOPPING_GAIN * (v0 - ref_v)
            else:
                accel = -(b_lon * K.Q_LONGITUDINAL * (v0 - ref_v)) / (b_lon * K.Q_LONGITUDINAL * b_lon + K.R_LONGITUDINAL)
            # -- tracker: lateral, the error state rolled over the horizon
            rh = ref_poses[r, i, 2]
            sh, ch = np.sin(rh), np.cos(rh)
            e0 = -(s[_X] - ref_poses[r, i, 0]) * sh + (s[_Y] - ref_poses[r, i, 1]) * ch
            he0 = _wrap(s[_H] - rh)
            st0 = s[_STEER]
            c_cum, g_cum, cb_cum = 0.0, 0.0, 0.0
            he[0] = he0 + st0 * c_cum + g_cum
            bhe[0] = 0.0
            for k in range(hz):
                v = v0 + accel * dt * k
                a[k] = v * dt
                c = v * dt / K.WHEELBASE
                curv = curvature[r, min(i + k, last)]
                g = -v * curv * dt
                c_cum += c
                g_cum += g
                cb_cum += c * (k * dt)
                he[k + 1] = he0 + st0 * c_cum + g_cum
                bhe[k + 1] = cb_cum
            for k in range(hz):
                ahe[k] = a[k] * he[k]
                abhe[k] = a[k] * bhe[k]
            z0 = e0 + _np_sum(ahe, hz)
            z1 = _wrap(he[hz])
            z2 = _wrap(st0)
            b0, b1, b2 = _np_sum(abhe, hz), bhe[hz], hz * dt
            num = _Q_LAT[0] * b0 * z0 + _Q_LAT[1] * b1 * z1 + _Q_LAT[2] * b2 * z2
            den = _Q_LAT[0] * b0 * b0 + _Q_LAT[1] * b1 * b1 + _Q_LAT[2] * b2 * b2
            steer_rate_cmd = 0.0 if stop else -num / (den + K.R_LATERAL)
            # -- kinematic bicycle with first-order lags on acceleration and steering angle
            nxt = states[r, i + 1]
            acc = dt / (dt + K.ACCEL_TIME_CONSTANT) * (accel - s[_AX]) + s[_AX]
            ideal_steer = dt * steer_rate_cmd + s[_STEER]
            lagged_steer = dt / (dt + K.STEERING_TIME_CONSTANT) * (ideal_steer - s[_STEER]) + s[_STEER]
            steer_rate = (lagged_steer - s[_STEER]) / dt
            vx = s[_VX]
            nxt[_X] = s[_X] + vx * np.cos(s[_H]) * dt
            nxt[_Y] = s[_Y] + vx * np.sin(s[_H]) * dt
            nxt[_H] = _wrap(s[_H] + vx * np.tan(s[_STEER]) / K.WHEELBASE * dt)
            nxt[_VX] = vx + acc * dt
            nxt[_VY] = 0.0
            nxt[_AX] = acc
            nxt[_AY] = 0.0
            nxt[_STEER] = min(max(s[_STEER] + steer_rate * dt, -K.MAX_STEERING), K.MAX_STEERING)
            nxt[_STEER_RATE] = steer_rate
            nxt[_YAW_RATE] = nxt[_VX] * np.tan(nxt[_STEER]) / K.WHEELBASE
            nxt[_YAW_ACC] = (nxt[_YAW_RATE] - s[_YAW_RATE]) / dt
    return states


@numba.njit(cache=True)
def fit_curvature(velocity: np.ndarray, dh: np.ndarray) -> np.ndarray:
    """(B, n) velocity profiles and heading changes per step -> (B, n) curvature profiles: the regularised
    least-squares fit of simulator.fit_velocity_curvature (unknowns kappa_0 and the curvature rates, heading
    change k = dt v_k kappa_k, penalties on kappa_0 and on the rates), solved for the curvatures themselves.
    With kappa as the unknowns the rate penalty couples neighbours only, so the normal equations are
    tridiagonal and one forward / backward sweep (Thomas) solves them in O(n) instead of a dense n x n solve:
      (dt v_i)^2 kappa_i + [i = 0] r0 kappa_0 + r / dt^2 (2 kappa_i - kappa_{i-1} - kappa_{i+1}) = dt v_i dh_i
    (the rate terms only for neighbours inside the profile)."""
    b, n = velocity.shape
    dt = K.DT
    coupling = K.CURVATURE_RATE_PENALTY / (dt * dt)
    out = np.empty((b, n))
    c = np.empty(n)
    d = np.empty(n)
    for r in range(b):
        prev_c, prev_d = 0.0, 0.0
        for i in range(n):
            w = dt * velocity[r, i]
            diag = w * w + coupling * ((i >= 1) + (i <= n - 2))
            if i == 0:
                diag += K.INITIAL_CURVATURE_PENALTY
            rhs = w * dh[r, i]
            m = diag + coupling * prev_c  # diag - (-coupling) * c'_{i-1}
            c[i] = -coupling / m
            d[i] = (rhs + coupling * prev_d) / m
            prev_c, prev_d = c[i], d[i]
        out[r, n - 1] = d[n - 1]
        for i in range(n - 2, -1, -1):
            out[r, i] = d[i] - c[i] * out[r, i + 1]
    return out
