"""Stage-2 synthetic scenes for navhard from the world's perturbed start states.

A synthetic scene is the logged window around the start frame with the ego moved to the perturbed start:
its four history poses and current ego state replaced, and the annotations of those frames re-expressed
in the moved ego frames (the objects stay where they were in the world). The future frames are kept as
logged (the human future is meaningless there; synthetic caches get no human filter)."""

from __future__ import annotations

import copy
from typing import Protocol, Sequence

import numpy as np

from drivefine_core.data.schema import Annotations, Frame, Scene, ego_to_global, global_to_ego

HISTORY = 4


class StartLike(Protocol):  # drivefine_core.data.synthetic.navhard.PerturbedStart
    token: str
    frame_index: int
    pose: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    driving_command: np.ndarray
    history: np.ndarray


def _moved(ann: Annotations, old_pose: np.ndarray, new_pose: np.ndarray) -> Annotations:
    if len(ann.track_tokens) == 0:
        return ann
    boxes = ann.boxes.copy()
    world = ego_to_global(boxes[:, [0, 1, 6]], old_pose)
    boxes[:, [0, 1, 6]] = global_to_ego(world, new_pose)
    rot = old_pose[2] - new_pose[2]
    v = ann.velocity_3d.copy()
    v[:, 0] = np.cos(rot) * ann.velocity_3d[:, 0] - np.sin(rot) * ann.velocity_3d[:, 1]
    v[:, 1] = np.sin(rot) * ann.velocity_3d[:, 0] + np.cos(rot) * ann.velocity_3d[:, 1]
    return Annotations(boxes, list(ann.names), v, list(ann.track_tokens))


def synthetic_scene(frames: Sequence[Frame], start: StartLike, log_name: str, map_location: str,
                    num_future: int = 8) -> Scene:
    """Scene (4 history + up to `num_future` frames) starting at the perturbed `start`."""
    first = start.frame_index - (HISTORY - 1)
    if first < 0 or start.frame_index >= len(frames):
        raise ValueError(f"navhard: start {start.token!r} (frame {start.frame_index}) does not fit log {log_name!r}")
    window = [copy.copy(f) for f in frames[first : start.frame_index + 1 + num_future]]
    for k in range(HISTORY):
        f = window[k]
        old = f.ego.pose
        ego = copy.copy(f.ego)
        ego.pose = np.asarray(start.history[k], dtype=np.float64)
        if k == HISTORY - 1:
            ego.velocity = np.asarray(start.velocity, dtype=np.float64)
            ego.acceleration = np.asarray(start.acceleration, dtype=np.float64)
            ego.driving_command = np.asarray(start.driving_command)
        f.ego = ego
        f.annotations = _moved(f.annotations, old, ego.pose)
    window[HISTORY - 1].token = start.token
    return Scene(start.token, log_name, map_location, window, HISTORY)
