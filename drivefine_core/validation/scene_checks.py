"""Expectations over scenes: ego speeds, accelerations and poses finite and in range, timestamps
increasing within every scene, one-hot driving commands, enough frames.

One row per (scene, frame); overlapping scenes repeat frames, which keeps the per-scene order checks
exact at a small cost in rows.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from drivefine_core.data.schema import Scene
from drivefine_core.validation.gx_runner import ValidationReport, run_suite
from drivefine_core.validation.params import ValidationParams

SUITE = "scenes"
_NUMERIC = ("x", "y", "heading", "vx", "vy", "ax", "ay", "speed")
_COMMAND = ("cmd_left", "cmd_straight", "cmd_right", "cmd_unknown")


def scenes_to_frame(scenes: Iterable[Scene]) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    for scene in scenes:
        frames = scene.frames
        n = len(frames)
        ts = np.array([f.timestamp_us for f in frames], dtype=np.float64)
        prev = np.concatenate([[np.nan], ts[:-1]])
        pose = _stack([f.ego.pose for f in frames], 3)
        vel = _stack([f.ego.velocity for f in frames], 2)
        acc = _stack([f.ego.acceleration for f in frames], 2)
        cmd = _stack([f.ego.driving_command for f in frames], 4)
        cols: dict[str, Any] = {
            "log_name": scene.log_name,
            "scene_token": scene.token,
            "frame_index": np.arange(n),
            "scene_frames": n,
            "timestamp_us": ts,
            "prev_timestamp_us": prev,
            "timestamp_step_s": (ts - prev) / 1e6,
            "x": pose[:, 0],
            "y": pose[:, 1],
            "heading": pose[:, 2],
            "vx": vel[:, 0],
            "vy": vel[:, 1],
            "ax": acc[:, 0],
            "ay": acc[:, 1],
            "speed": np.hypot(vel[:, 0], vel[:, 1]),
            "command_sum": cmd.sum(axis=1),
        }
        for i, name in enumerate(_COMMAND):
            cols[name] = cmd[:, i]
        parts.append(pd.DataFrame(cols))
    if not parts:
        return pd.DataFrame(columns=["log_name"])
    return pd.concat(parts, ignore_index=True)


def _stack(values: list[Any], width: int) -> np.ndarray:
    """(n, width) float array; a value of the wrong shape becomes NaNs (and fails not-null)."""
    out = np.full((len(values), width), np.nan)
    for i, v in enumerate(values):
        a = np.asarray(v, dtype=np.float64).reshape(-1)
        if a.shape == (width,):
            out[i] = a
    return out


def scene_expectations(p: ValidationParams) -> list[Any]:
    import great_expectations.expectations as gxe

    ex: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{c} is a number (not NaN)") for c in _NUMERIC]
    ex += [
        gxe.ExpectColumnValuesToBeBetween(column="speed", min_value=0.0, max_value=p.max_speed_mps, description="ego speed in range"),
        gxe.ExpectColumnValuesToBeBetween(
            column="vx", min_value=-p.max_reverse_speed_mps, max_value=p.max_speed_mps, description="longitudinal speed in range"
        ),
        gxe.ExpectColumnValuesToBeBetween(column="ax", min_value=-p.max_abs_accel_mps2, max_value=p.max_abs_accel_mps2, description="longitudinal acceleration in range"),
        gxe.ExpectColumnValuesToBeBetween(column="ay", min_value=-p.max_abs_accel_mps2, max_value=p.max_abs_accel_mps2, description="lateral acceleration in range"),
        gxe.ExpectColumnValuesToBeBetween(column="x", min_value=-p.max_abs_position_m, max_value=p.max_abs_position_m, description="position finite and in range"),
        gxe.ExpectColumnValuesToBeBetween(column="y", min_value=-p.max_abs_position_m, max_value=p.max_abs_position_m, description="position finite and in range"),
        gxe.ExpectColumnValuesToBeBetween(column="heading", min_value=-p.max_abs_heading_rad, max_value=p.max_abs_heading_rad, description="heading finite and in range"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="timestamp_us", column_B="prev_timestamp_us", ignore_row_if="either_value_is_missing",
            description="timestamps strictly increasing within a scene",
        ),
        gxe.ExpectColumnValuesToBeBetween(column="timestamp_step_s", min_value=0.0, max_value=p.max_frame_step_s, description="no gap between consecutive frames"),
        gxe.ExpectColumnValuesToBeBetween(column="scene_frames", min_value=p.min_scene_frames, description="enough frames for history + target"),
        gxe.ExpectColumnValuesToBeBetween(column="command_sum", min_value=1, max_value=1, description="driving command is one-hot"),
    ]
    ex += [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[0, 1], description="driving command is one-hot") for c in _COMMAND]
    ex.append(gxe.ExpectColumnValuesToNotBeNull(column="command_sum", description="driving command has 4 values"))
    return ex


def validate_scenes(scenes: Iterable[Scene], params: ValidationParams | None = None) -> ValidationReport:
    """One GX validation over the scenes of every log; the report lists failures per log."""
    p = params or ValidationParams()
    return run_suite(scenes_to_frame(scenes), scene_expectations(p), SUITE, p.example_values)


def validate_scenes_by_log(scenes: Iterable[Scene], params: ValidationParams | None = None) -> dict[str, list[str]]:
    """log_name -> descriptions of the failed expectations ([] for a log that passed)."""
    return validate_scenes(scenes, params).by_log


def validate_log_scenes(log_name: str, scenes: list[Scene], params: ValidationParams | None = None) -> list[str]:
    """The failures of one log: fits ingest's per-log `validate(log_name, scenes)` hook. Prefer one
    validate_scenes call over all logs where the caller can (GX costs ~0.1-0.2 s per call)."""
    return validate_scenes(scenes, params).by_log.get(log_name, [])
