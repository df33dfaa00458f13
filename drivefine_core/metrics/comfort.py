"""Comfort signals (v1 C, v2 HC and EC) with Savitzky-Golay filters as precomputed linear operators.

savgol_filter(mode='interp') along a fixed-length axis is linear, so filtering an identity matrix once
gives a matrix M with filtered = y @ M.T; every candidate then costs one small matrix product."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.simulator import AX, AY, H, YAW_ACC, YAW_RATE


@lru_cache(maxsize=64)
def savgol_matrix(n: int, window: int, poly: int, deriv: int = 0) -> np.ndarray:
    window = min(window, n)
    return savgol_filter(np.eye(n), window, poly, deriv=deriv, delta=K.DT, axis=0, mode="interp")


def _sg(y: np.ndarray, window: int, poly: int, deriv: int = 0) -> np.ndarray:
    return np.round(y @ savgol_matrix(y.shape[-1], window, poly, deriv).T, K.COMFORT_DECIMALS)


def _signals(ax, ay, heading, acc_window: int, jerk_window: int) -> dict[str, np.ndarray]:
    """The six comfort signals, each (B, T)."""
    sm_mag = _sg(np.hypot(ax, ay), 8, 2)
    sm_lon = _sg(ax, 8, 2)
    yaw = np.unwrap(heading, axis=-1)
    return {
        "lon_accel": _sg(ax, acc_window, 2),
        "lat_accel": _sg(ay, acc_window, 2),
        "accel_mag": sm_mag,
        "jerk": _sg(sm_mag, jerk_window, 2, 1),
        "lon_jerk": _sg(sm_lon, jerk_window, 2, 1),
        "yaw_rate": _sg(yaw, 5, 2, 1),
        "yaw_accel": _sg(yaw, 5, 3, 2),
    }


def _within(sig: dict[str, np.ndarray]) -> np.ndarray:
    ok = (sig["lon_accel"] > K.MIN_LON_ACCEL) & (sig["lon_accel"] < K.MAX_LON_ACCEL)
    ok &= np.abs(sig["lat_accel"]) < K.MAX_ABS_LAT_ACCEL
    ok &= np.abs(sig["jerk"]) < K.MAX_ABS_JERK
    ok &= np.abs(sig["lon_jerk"]) < K.MAX_ABS_LON_JERK
    ok &= np.abs(sig["yaw_rate"]) < K.MAX_ABS_YAW_RATE
    ok &= np.abs(sig["yaw_accel"]) < K.MAX_ABS_YAW_ACCEL
    return np.all(ok, axis=-1)


def comfort_v1(states: np.ndarray) -> np.ndarray:
    """(B, 41, 11) simulated states -> (B,) bool, rear-axle accelerations, windows 41 / 8+41 / 5."""
    return _within(_signals(states[..., AX], states[..., AY], states[..., H], 41, 41))


def center_accelerations(ax, ay, yaw_rate, yaw_accel) -> tuple[np.ndarray, np.ndarray]:
    """Rear-axle body accelerations -> vehicle-centre ones (rigid body, centre ahead of the axle)."""
    r = K.REAR_AXLE_TO_CENTER
    return ax - yaw_rate**2 * r, ay + yaw_accel * r


def _past_yaw_terms(heading: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yaw = np.unwrap(heading, axis=-1)
    rate = np.gradient(yaw, K.DT, axis=-1)
    return rate, np.gradient(rate, K.DT, axis=-1)


def history_comfort(states: np.ndarray, past: np.ndarray) -> np.ndarray:
    """HC: (B, 41, 11) simulated + (B, 14, 7) logged past -> (B,) bool over the 55 joined states."""
    p_rate, p_acc = _past_yaw_terms(past[..., 2])
    p_ax, p_ay = center_accelerations(past[..., 5], past[..., 6], p_rate, p_acc)
    s_ax, s_ay = center_accelerations(states[..., AX], states[..., AY], states[..., YAW_RATE], states[..., YAW_ACC])
    ax = np.concatenate([p_ax, s_ax], axis=-1)
    ay = np.concatenate([p_ay, s_ay], axis=-1)
    heading = np.concatenate([past[..., 2], states[..., H]], axis=-1)
    return _within(_signals(ax, ay, heading, 8, 15))


def extended_comfort(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """EC: (B, 41, 11) plans now and 0.5 s earlier -> (B,) bool, RMS of the aligned signal differences."""
    out = np.ones(len(current), dtype=bool)
    sigs = []
    for s in (current, previous):
        ax, ay = center_accelerations(s[..., AX], s[..., AY], s[..., YAW_RATE], s[..., YAW_ACC])
        sigs.append(_signals(ax, ay, s[..., H], 8, 15))
    cur, prev = sigs
    for name, limit in zip(("accel_mag", "jerk", "yaw_rate", "yaw_accel"), K.EC_THRESHOLDS):
        diff = cur[name][:, : -K.EC_SHIFT] - prev[name][:, K.EC_SHIFT :]
        out &= np.sqrt(np.mean(diff**2, axis=-1)) <= limit
    return out
