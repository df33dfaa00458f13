"""Perturbed stage-2 start states for navhard-style two-stage scoring (data only, nothing written).

From the stage-1 scene's current frame t, the logged ego state at t + offset_frames (~4 s) is moved
sideways, turned and sped up / slowed down, seeded per scene token. The four history poses that lead
to it are moved with the same rigid transform, so the synthetic scene's past stays consistent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivefine_core.data.schema import Frame, ego_to_global, global_to_ego, wrap_angle
from drivefine_core.data.synthetic.params import NavhardStartParams

HISTORY_FRAMES = 4


@dataclass
class PerturbedStart:
    source_token: str  # stage-1 scene token (its current frame)
    start_token: str  # the logged frame the start is derived from
    token: str  # 16-hex token of this synthetic start
    frame_index: int  # index of the start frame in the log
    pose: np.ndarray  # (3,) global [x, y, heading] of the perturbed rear axle
    velocity: np.ndarray  # (2,) ego frame
    acceleration: np.ndarray  # (2,) ego frame
    driving_command: np.ndarray  # (4,) one-hot, as logged
    history: np.ndarray  # (4, 3) global poses, the last one is `pose`
    lateral_offset_m: float
    heading_offset_rad: float
    speed_scale: float


def _scene_seed(token: str, seed: int) -> list[int]:
    try:
        return [seed, int(token[:16], 16) & 0x7FFFFFFF]
    except ValueError:
        return [seed, sum(ord(c) * 31**i for i, c in enumerate(token)) & 0x7FFFFFFF]


def perturbed_starts(frames: Sequence[Frame], current_index: int, params: NavhardStartParams) -> list[PerturbedStart]:
    """`params.num_starts` jittered starts `params.offset_frames` after frame `current_index` of one log."""
    target = current_index + params.offset_frames
    if not 0 <= current_index < len(frames):
        raise IndexError(f"navhard: current_index {current_index} outside the log's {len(frames)} frames")
    if target >= len(frames) or target - (HISTORY_FRAMES - 1) < 0:
        raise ValueError(
            f"navhard: log has {len(frames)} frames, a start {params.offset_frames} frames after frame "
            f"{current_index} (with {HISTORY_FRAMES} history frames) does not fit"
        )
    source = frames[current_index]
    start = frames[target]
    rng = np.random.default_rng(_scene_seed(source.token, params.seed))
    logged = np.stack([f.ego.pose for f in frames[target - HISTORY_FRAMES + 1 : target + 1]])
    local = global_to_ego(logged, start.ego.pose)  # history in the start frame (last row ~ 0)
    out = []
    for k in range(params.num_starts):
        lat = float(np.clip(rng.normal(0.0, params.lateral_std_m), -params.max_lateral_m, params.max_lateral_m))
        dh = float(np.clip(rng.normal(0.0, params.heading_std_rad), -params.max_heading_rad, params.max_heading_rad))
        scale = float(max(0.0, 1.0 + rng.normal(0.0, params.speed_std_frac)))
        # new origin: shifted left by `lat` in the logged start frame, turned by dh
        origin = ego_to_global(np.array([0.0, lat, dh]), start.ego.pose)
        history = ego_to_global(local, origin)
        history[-1] = origin
        out.append(PerturbedStart(
            source_token=source.token,
            start_token=start.token,
            token=rng.bytes(8).hex(),
            frame_index=target,
            pose=origin,
            velocity=start.ego.velocity * scale,
            acceleration=start.ego.acceleration.copy(),
            driving_command=start.ego.driving_command.copy(),
            history=history,
            lateral_offset_m=lat,
            heading_offset_rad=float(wrap_angle(dh)),
            speed_scale=scale,
        ))
    return out
