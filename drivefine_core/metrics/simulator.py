"""Batched LQR tracker + kinematic bicycle (the PDM simulator), numpy, no loop over trajectories.

Every input trajectory is tracked for 40 steps of 0.1 s from the same kind of initial state. Velocity and
curvature are least-squares fits to the poses (the planner's speeds are ignored), done once per trajectory
for the whole horizon; the velocity fit is a constant linear operator (its normal matrix does not depend
on the headings) and is precomputed, the curvature fit a tridiagonal solve. Only the loop over the 40 time steps remains: compiled
(tracker_kernel.track); `simulate_arrays` keeps it as array code, the definition the kernel is tested against.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.tracker_kernel import fit_curvature, track

# State vector layout (rear axle, ego frame of the scene).
X, Y, H, VX, VY, AX, AY, STEER, STEER_RATE, YAW_RATE, YAW_ACC = range(11)
STATE_DIM = 11


def wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def interpolate_plans(plans: np.ndarray, plan_dt: float = K.PLAN_DT) -> np.ndarray:
    """(B, P, 3) ego-frame poses at plan_dt (t=0 excluded) -> (B, 41, 3) at 0.1 s, starting at (0, 0, 0).

    Linear in x, y and unwrapped heading; held at the last pose past the end of the plan."""
    plans = np.asarray(plans, dtype=np.float64)
    b, p, _ = plans.shape
    full = np.concatenate([np.zeros((b, 1, 3)), plans], axis=1)
    full[..., 2] = np.unwrap(full[..., 2], axis=1)
    t = np.arange(K.NUM_STATES) * K.DT
    pos = np.minimum(t / plan_dt, p)
    i0 = np.minimum(np.floor(pos + 1e-9).astype(int), p)
    i1 = np.minimum(i0 + 1, p)
    w = np.clip(pos - i0, 0.0, 1.0)[None, :, None]
    out = full[:, i0] * (1 - w) + full[:, i1] * w
    out[..., 2] = wrap(out[..., 2])
    return out


def jerk_rows(n_disp: int) -> np.ndarray:
    """(n_disp - 2, n_disp) regulariser of the velocity fit over x = [v0, a_0 .. a_{n-2}], as NAVSIM v1.1's
    batch LQR builds it (`batch_lqr_utils._make_banded_difference_matrix`, then a zero column for v0). That
    function writes the +1 band and then the -1 band over the same columns, so every row but the last is
    -a_i alone (an acceleration penalty) and only the last is a_{n-2} - a_{n-3}; nuplan-devkit's own
    tracker_utils version is a true difference matrix. NAVSIM's pdm_score uses the batch one."""
    reg = np.zeros((n_disp - 2, n_disp))
    idx = np.arange(n_disp - 2)
    reg[idx, 1 + idx] = -1.0
    reg[-1, -1] = 1.0
    return reg


@lru_cache(maxsize=4)
def _velocity_operator(n_disp: int) -> np.ndarray:
    """V (n, n): velocity_profile = V @ s, s_k = displacement_k . heading_k (the jerk-regularised fit of
    [v0, a_0 ..] is linear in s with a normal matrix that does not depend on the poses)."""
    dt = K.DT
    t = np.zeros((n_disp, n_disp))
    t[:, 0] = dt
    t[:, 1:] = np.tril(np.ones((n_disp, n_disp - 1)), -1) * dt * dt
    reg = jerk_rows(n_disp)
    normal = t.T @ t + K.JERK_PENALTY * reg.T @ reg
    x_of_s = np.linalg.solve(normal, t.T)  # solution x = [v0, a_0..] per unit s
    gen = np.tril(np.ones((n_disp, n_disp)), -1)[:, :-1] * dt  # v_k = v0 + dt * sum_{j<k} a_j
    profile = np.concatenate([np.ones((n_disp, 1)), gen], axis=1)
    return profile @ x_of_s


def fit_velocity_curvature(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, N, 3) poses at 0.1 s -> velocity (B, N-1) and curvature (B, N-1) profiles. The curvature fit
    (kappa_0 and curvature rates, NAVSIM's parametrisation) is solved for the curvatures directly, where its
    normal equations are tridiagonal (tracker_kernel.fit_curvature)."""
    n_disp = poses.shape[1] - 1
    d = np.diff(poses[..., :2], axis=1)
    h = poses[:, :-1, 2]
    s = d[..., 0] * np.cos(h) + d[..., 1] * np.sin(h)
    velocity = s @ _velocity_operator(n_disp).T
    dh = wrap(np.diff(poses[..., 2], axis=1))
    return velocity, fit_curvature(velocity, dh)


def initial_states(velocity: np.ndarray, acceleration: np.ndarray, steering: np.ndarray | float = 0.0,
                   yaw_rate: np.ndarray | float = 0.0) -> np.ndarray:
    """(B, 2) body velocity and acceleration -> (B, 11) initial states at the ego-frame origin."""
    velocity = np.atleast_2d(velocity)
    s = np.zeros((len(velocity), STATE_DIM))
    s[:, VX:VY + 1] = velocity
    s[:, AX:AY + 1] = np.atleast_2d(acceleration)
    s[:, STEER] = steering
    s[:, YAW_RATE] = yaw_rate
    return s


def _lqr_commands(state: np.ndarray, ref_pose: np.ndarray, ref_v: np.ndarray, curv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One tracker call for all trajectories: acceleration and steering-rate commands."""
    dt, hz = K.DT, K.TRACKING_HORIZON
    v0 = state[:, VX]
    stop = (ref_v <= K.STOPPING_VELOCITY) & (v0 <= K.STOPPING_VELOCITY)
    b_lon = hz * dt
    lqr_accel = -(b_lon * K.Q_LONGITUDINAL * (v0 - ref_v)) / (b_lon * K.Q_LONGITUDINAL * b_lon + K.R_LONGITUDINAL)
    accel = np.where(stop, -K.STOPPING_GAIN * (v0 - ref_v), lqr_accel)

    # Lateral: error state [lateral, heading, steering] rolled over the horizon with the velocity profile
    # implied by the acceleration command; the H-step map is affine in x0 and linear in the input.
    sh, ch = np.sin(ref_pose[:, 2]), np.cos(ref_pose[:, 2])
    e0 = -(state[:, X] - ref_pose[:, 0]) * sh + (state[:, Y] - ref_pose[:, 1]) * ch
    he0 = wrap(state[:, H] - ref_pose[:, 2])
    st0 = state[:, STEER]
    v = v0[:, None] + accel[:, None] * dt * np.arange(hz)[None]
    a = v * dt
    c = v * dt / K.WHEELBASE
    g = -v * curv * dt
    zeros = np.zeros((len(v), 1))
    c_cum = np.concatenate([zeros, np.cumsum(c, axis=1)], axis=1)  # (B, H+1) sums over j<k
    g_cum = np.concatenate([zeros, np.cumsum(g, axis=1)], axis=1)
    he = he0[:, None] + st0[:, None] * c_cum + g_cum  # heading error before step k, k=0..H
    z = np.stack([e0 + np.sum(a * he[:, :-1], axis=1), he[:, -1], st0], axis=1)
    bst = np.arange(hz + 1) * dt
    bhe = np.concatenate([zeros, np.cumsum(c * bst[None, :-1], axis=1)], axis=1)
    bvec = np.stack([np.sum(a * bhe[:, :-1], axis=1), bhe[:, -1], np.full(len(v), hz * dt)], axis=1)
    z[:, 1:] = wrap(z[:, 1:])
    q = K.Q_LATERAL
    steer_rate = -np.sum(q * bvec * z, axis=1) / (np.sum(q * bvec * bvec, axis=1) + K.R_LATERAL)
    steer_rate = np.where(stop, 0.0, steer_rate)
    return accel, steer_rate


def _bicycle_step(s: np.ndarray, accel_cmd: np.ndarray, steer_rate_cmd: np.ndarray) -> np.ndarray:
    dt = K.DT
    accel = dt / (dt + K.ACCEL_TIME_CONSTANT) * (accel_cmd - s[:, AX]) + s[:, AX]
    ideal_steer = dt * steer_rate_cmd + s[:, STEER]
    lagged_steer = dt / (dt + K.STEERING_TIME_CONSTANT) * (ideal_steer - s[:, STEER]) + s[:, STEER]
    steer_rate = (lagged_steer - s[:, STEER]) / dt
    v = s[:, VX]
    n = np.empty_like(s)
    n[:, X] = s[:, X] + v * np.cos(s[:, H]) * dt
    n[:, Y] = s[:, Y] + v * np.sin(s[:, H]) * dt
    n[:, H] = wrap(s[:, H] + v * np.tan(s[:, STEER]) / K.WHEELBASE * dt)
    n[:, VX] = v + accel * dt
    n[:, VY] = 0.0
    n[:, AX] = accel
    n[:, AY] = 0.0
    n[:, STEER] = np.clip(s[:, STEER] + steer_rate * dt, -K.MAX_STEERING, K.MAX_STEERING)
    n[:, STEER_RATE] = steer_rate
    n[:, YAW_RATE] = n[:, VX] * np.tan(n[:, STEER]) / K.WHEELBASE
    n[:, YAW_ACC] = (n[:, YAW_RATE] - s[:, YAW_RATE]) / dt
    return n


def simulate(ref_poses: np.ndarray, init: np.ndarray) -> np.ndarray:
    """Track (B, 41, 3) reference poses from (B, 11) initial states -> (B, 41, 11) simulated states."""
    ref_poses = np.asarray(ref_poses, dtype=np.float64)
    b, n, _ = ref_poses.shape
    velocity, curvature = fit_velocity_curvature(ref_poses)
    return track(np.ascontiguousarray(ref_poses), velocity, curvature, np.ascontiguousarray(init, dtype=np.float64))


def simulate_arrays(ref_poses: np.ndarray, init: np.ndarray) -> np.ndarray:
    """simulate with the step loop as array code over the batch (the definition tracker_kernel.track
    compiles; tests compare the two)."""
    ref_poses = np.asarray(ref_poses, dtype=np.float64)
    b, n, _ = ref_poses.shape
    velocity, curvature = fit_velocity_curvature(ref_poses)
    last = n - 2  # last index of the (n-1)-long profiles
    states = np.empty((b, n, STATE_DIM))
    states[:, 0] = init
    steps = np.arange(K.TRACKING_HORIZON)
    for i in range(n - 1):
        ref_v = velocity[:, min(i + K.TRACKING_HORIZON, last)]
        curv = curvature[:, np.minimum(i + steps, last)]
        accel, steer_rate = _lqr_commands(states[:, i], ref_poses[:, i], ref_v, curv)
        states[:, i + 1] = _bicycle_step(states[:, i], accel, steer_rate)
    return states
