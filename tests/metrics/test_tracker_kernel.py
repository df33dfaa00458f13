"""The compiled step loop of the simulator (tracker_kernel.track) against its array definition."""

import numpy as np

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.simulator import initial_states, interpolate_plans, simulate, simulate_arrays


def _plans(rng: np.random.Generator, b: int) -> np.ndarray:
    """Plans from standing still to fast, straight and sharply turning, some reversing."""
    steps = rng.normal([2.0, 0.0, 0.0], [2.0, 0.8, 0.15], size=(b, K.PLAN_POSES, 3))
    steps[: b // 8] *= 0.01  # near standstill: the tracker's stopping branch
    return np.cumsum(steps, axis=1)


def test_compiled_loop_tracks_like_the_array_code():
    rng = np.random.default_rng(3)
    b = 400
    ref = interpolate_plans(_plans(rng, b))
    init = initial_states(np.c_[rng.uniform(0, 15, b), np.zeros(b)], np.c_[rng.normal(0, 1.5, b), np.zeros(b)],
                          steering=rng.normal(0, 0.2, b), yaw_rate=rng.normal(0, 0.1, b))
    init[: b // 8, 3] = rng.uniform(0, 0.15, b // 8)
    got, want = simulate(ref, init), simulate_arrays(ref, init)
    assert got.shape == want.shape == (b, K.NUM_STATES, 11)
    # the same operations in the same order: equal but for the last bits of sin / cos / tan
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert (got == want).mean() > 0.9
    # the stopping branch ran: some of those plans end (nearly) standing
    assert (np.abs(got[: b // 8, -1, 3]) < 0.2).any()


def test_tridiagonal_curvature_fit_solves_navsims_least_squares():
    """The curvature fit in NAVSIM's unknowns (kappa_0, rates; heading change k = dt v_k (kappa_0 + dt sum of
    the first k rates)), solved densely, against the tridiagonal solve for the curvatures."""
    from drivefine_core.metrics.simulator import fit_velocity_curvature, wrap

    rng = np.random.default_rng(5)
    ref = interpolate_plans(_plans(rng, 64))
    velocity, curvature = fit_velocity_curvature(ref)
    dh = wrap(np.diff(ref[..., 2], axis=1))
    n, dt = velocity.shape[1], K.DT
    design = np.zeros((n, n))
    design[:, 0] = dt
    design[:, 1:] = np.tril(np.ones((n, n - 1)), -1) * dt * dt
    penalty = np.diag([K.INITIAL_CURVATURE_PENALTY] + [K.CURVATURE_RATE_PENALTY] * (n - 1))
    for v, h, got in zip(velocity, dh, curvature):
        a = v[:, None] * design
        x = np.linalg.solve(a.T @ a + penalty, a.T @ h)
        want = x[0] + dt * np.concatenate([[0.0], np.cumsum(x[1:])])
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
    assert np.abs(curvature).max() > 0.01  # the plans turn


def test_ego_boxes_are_geometrys_numbers():
    from drivefine_core.metrics.ego_kernel import ego_boxes
    from drivefine_core.metrics.geometry import ego_center, ego_corners

    rng = np.random.default_rng(2)
    states = rng.normal(0, 30, size=(7, 41, 11))
    states[..., 2] = rng.uniform(-4, 4, size=(7, 41))
    centers, corners = ego_boxes(states)
    np.testing.assert_array_equal(centers, ego_center(states))
    np.testing.assert_array_equal(corners, ego_corners(states))
