"""Scene windows over a log's frames, and the train/test split of logs."""

from __future__ import annotations

import hashlib

from drivefine_core.data.params import SceneFilter, SplitParams
from drivefine_core.data.schema import Frame, Scene

__all__ = ["SceneFilter", "SplitParams", "window_starts", "cut_scenes", "assign_split"]


def window_starts(num_log_frames: int, scene_filter: SceneFilter) -> list[int]:
    """Start indices of the full-length windows (short tail windows are dropped)."""
    last_start = num_log_frames - scene_filter.num_frames
    return list(range(0, last_start + 1, scene_filter.stride)) if last_start >= 0 else []


def cut_scenes(
    frames: list[Frame],
    scene_filter: SceneFilter,
    log_name: str,
    map_location: str,
    limit: int | None = None,
) -> list[Scene]:
    """Cut one log into scenes.

    Windows start every `stride` frames; a window is kept when it is full length, its current frame
    (index num_history_frames - 1) has roadblock_ids if `has_route`, and its current token passes the
    `tokens` filter. `log_names` drops whole logs. At most `limit` scenes (default: filter.max_scenes) are
    returned; the caller enforces max_scenes across logs.
    """
    if scene_filter.log_names is not None and log_name not in scene_filter.log_names:
        return []
    tokens = set(scene_filter.tokens) if scene_filter.tokens is not None else None
    limit = scene_filter.max_scenes if limit is None else limit
    current = scene_filter.num_history_frames - 1
    scenes: list[Scene] = []
    for start in window_starts(len(frames), scene_filter):
        if limit is not None and len(scenes) >= limit:
            break
        window = frames[start : start + scene_filter.num_frames]
        if scene_filter.has_route and not window[current].roadblock_ids:
            continue
        if tokens is not None and window[current].token not in tokens:
            continue
        scenes.append(
            Scene(
                token=window[current].token,
                log_name=log_name,
                map_location=map_location,
                frames=list(window),
                num_history_frames=scene_filter.num_history_frames,
            )
        )
    return scenes


def hash_fraction(text: str, salt: str) -> float:
    """A stable number in [0, 1) from a string (sha256, independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(log_name: str, split_dir: str, params: SplitParams) -> str:
    """The split a whole log belongs to: by hash of its name, or by the folder it was found in."""
    if params.mode == "folder":
        return params.folder_map.get(split_dir, split_dir)
    return params.test_name if hash_fraction(log_name, params.salt) < params.test_fraction else params.train_name
