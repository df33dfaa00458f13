"""Plain LQR tracker + kinematic bicycle, one trajectory and one step at a time, written to read like the
spec (explicit matrices, pseudo-inverse least squares). Used only to cross-check simulator.py."""

from __future__ import annotations

import numpy as np

from drivefine_core.metrics import constants as K


def _angle(a: float) -> float:
    return (a + np.pi) % (2 * np.pi) - np.pi


def interpolate_plan(plan: np.ndarray) -> np.ndarray:
    """(8, 3) poses at 0.5 s -> (41, 3) at 0.1 s from the origin, linear with unwrapped headings."""
    times = np.arange(0, len(plan) + 1) * K.PLAN_DT
    pts = np.vstack([np.zeros(3), plan])
    heading = np.unwrap(pts[:, 2])
    out = []
    for t in np.arange(K.NUM_STATES) * K.DT:
        out.append([np.interp(t, times, pts[:, 0]), np.interp(t, times, pts[:, 1]),
                    _angle(np.interp(t, times, heading))])
    return np.array(out)


def fit_profiles(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dt = K.DT
    disp = np.diff(poses[:, :2], axis=0)
    dh = np.array([_angle(a) for a in np.diff(poses[:, 2])])
    n = len(disp)
    # Velocity: unknowns [v0, a_0 .. a_{n-2}]; displacement k = dt * v_k * (cos h_k, sin h_k).
    a_mat = np.zeros((2 * n, n))
    for k in range(n):
        direction = np.array([np.cos(poses[k, 2]), np.sin(poses[k, 2])])
        a_mat[2 * k : 2 * k + 2, 0] = dt * direction
        for j in range(k):
            a_mat[2 * k : 2 * k + 2, 1 + j] = dt * dt * direction
    # NAVSIM v1.1's batch "jerk" rows (see simulator.jerk_rows): -a_i for every row but the last, whose
    # +1 on a_{n-2} survives the band overwrite.
    reg = np.zeros((n - 2, n))
    for i in range(n - 2):
        reg[i, 1 + i] = -1.0
    reg[n - 3, n - 1] = 1.0
    x = np.linalg.pinv(a_mat.T @ a_mat + K.JERK_PENALTY * reg.T @ reg) @ a_mat.T @ disp.reshape(-1)
    velocity = np.array([x[0] + dt * np.sum(x[1 : 1 + k]) for k in range(n)])
    # Curvature: heading change k = dt * v_k * kappa_k, kappa_k = kappa_0 + dt * sum_{j<k} rate_j.
    c_mat = np.zeros((n, n))
    for k in range(n):
        c_mat[k, 0] = dt * velocity[k]
        c_mat[k, 1 : 1 + k] = dt * dt * velocity[k]
    q = np.diag([K.INITIAL_CURVATURE_PENALTY] + [K.CURVATURE_RATE_PENALTY] * (n - 1))
    y = np.linalg.pinv(c_mat.T @ c_mat + q) @ c_mat.T @ dh
    curvature = np.array([y[0] + dt * np.sum(y[1 : 1 + k]) for k in range(n)])
    return velocity, curvature


def _one_step_lqr(x0, ref, q, r, a, b, g, angle_idx) -> float:
    err = a @ x0 + g - ref
    for i in angle_idx:
        err[i] = _angle(err[i])
    # One input, so (B^T Q B + R) is 1 x 1 and its inverse is a division.
    return float(-(b.T @ q @ err).item() / (b.T @ q @ b + r).item())


def simulate_one(ref: np.ndarray, velocity0: np.ndarray, accel0: np.ndarray, steering0: float = 0.0,
                 yaw_rate0: float = 0.0) -> np.ndarray:
    """(41, 3) reference poses -> (41, 11) states [x, y, h, vx, vy, ax, ay, steer, steer_rate, yaw_rate, yaw_acc]."""
    dt, hz = K.DT, K.TRACKING_HORIZON
    vel_prof, curv_prof = fit_profiles(ref)
    last = len(vel_prof) - 1
    s = np.zeros(11)
    s[3:5], s[5:7], s[7], s[9] = velocity0, accel0, steering0, yaw_rate0
    out = [s.copy()]
    for i in range(len(ref) - 1):
        v0 = s[3]
        ref_v = vel_prof[min(i + hz, last)]
        curv = [curv_prof[min(i + k, last)] for k in range(hz)]
        if ref_v <= K.STOPPING_VELOCITY and v0 <= K.STOPPING_VELOCITY:
            accel, steer_rate = -K.STOPPING_GAIN * (v0 - ref_v), 0.0
        else:
            accel = _one_step_lqr(np.array([v0]), np.array([ref_v]), np.array([[K.Q_LONGITUDINAL]]),
                                  np.array([[K.R_LONGITUDINAL]]), np.eye(1), np.array([[hz * dt]]), np.zeros(1), [])
            rx, ry, rh = ref[i]
            lat = -(s[0] - rx) * np.sin(rh) + (s[1] - ry) * np.cos(rh)
            x0 = np.array([lat, _angle(s[2] - rh), s[7]])
            a_tot, b_tot, g_tot = np.eye(3), np.zeros((3, 1)), np.zeros(3)
            for k in range(hz):
                v = v0 + accel * dt * k
                a_k = np.eye(3)
                a_k[0, 1] = v * dt
                a_k[1, 2] = v * dt / K.WHEELBASE
                g_k = np.array([0.0, -v * curv[k] * dt, 0.0])
                a_tot = a_k @ a_tot
                b_tot = a_k @ b_tot + np.array([[0.0], [0.0], [dt]])
                g_tot = a_k @ g_tot + g_k
            steer_rate = _one_step_lqr(x0, np.zeros(3), np.diag(K.Q_LATERAL), np.array([[K.R_LATERAL]]),
                                       a_tot, b_tot, g_tot, [1, 2])
        # Kinematic bicycle with first-order lags on acceleration and steering angle.
        new_accel = dt / (dt + K.ACCEL_TIME_CONSTANT) * (accel - s[5]) + s[5]
        ideal_steer = s[7] + dt * steer_rate
        lag_steer = dt / (dt + K.STEERING_TIME_CONSTANT) * (ideal_steer - s[7]) + s[7]
        new_rate = (lag_steer - s[7]) / dt
        n = np.zeros(11)
        n[0] = s[0] + s[3] * np.cos(s[2]) * dt
        n[1] = s[1] + s[3] * np.sin(s[2]) * dt
        n[2] = _angle(s[2] + s[3] * np.tan(s[7]) / K.WHEELBASE * dt)
        n[3] = s[3] + new_accel * dt
        n[5] = new_accel
        n[7] = min(max(s[7] + new_rate * dt, -K.MAX_STEERING), K.MAX_STEERING)
        n[8] = new_rate
        n[9] = n[3] * np.tan(n[7]) / K.WHEELBASE
        n[10] = (n[9] - s[9]) / dt
        s = n
        out.append(s.copy())
    return np.array(out)
