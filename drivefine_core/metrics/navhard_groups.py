"""navhard groups from a split's scenes: which stage-1 scenes are scored, their synthetic stage-2 scenes
(perturbed starts of the log, data.synthetic.navhard) and the JSON that ties them together.

The scenes of a log are stitched back into the log's frames (scenes overlap); a stage-1 scene at frame i
needs the frames up to i + offset (its stage-2 start), with no gap in between; when frame i - 1 is a
scene of the split too (scenes cut every frame), it is the group's second stage-1 scene (the EC pair). At most `max_groups` stage-1 scenes, spread evenly over the eligible ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Iterable

import numpy as np

from drivefine_core.data.schema import Frame, Scene
from drivefine_core.data.synthetic.navhard import HISTORY_FRAMES, perturbed_starts
from drivefine_core.data.synthetic.params import NavhardStartParams
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.navhard import NavhardGroup
from drivefine_core.metrics.navhard_scenes import synthetic_scene
from drivefine_core.metrics.params import NavhardParams

GROUPS_FILE = "groups.json"
FRAME_DT_US = 500_000
DT_TOLERANCE_US = 50_000


@dataclass
class GroupSpec:
    log: str
    original: str  # stage-1 scene token (frame i)
    prev: str | None  # stage-1 scene token of frame i - 1; None when that frame is no scene of the split
    synthetic_now: list[str]
    synthetic_prev: list[str]


def _log_frames(scenes: list[Scene]) -> list[Frame]:
    by_time: dict[int, Frame] = {}
    for s in scenes:
        for f in s.frames:
            by_time.setdefault(int(f.timestamp_us), f)
    return [by_time[t] for t in sorted(by_time)]


def _contiguous(frames: list[Frame], lo: int, hi: int) -> bool:
    t = np.array([f.timestamp_us for f in frames[lo : hi + 1]], dtype=np.int64)
    return bool(np.all(np.abs(np.diff(t) - FRAME_DT_US) <= DT_TOLERANCE_US))


def build_groups(scenes: Iterable[Scene], params: NavhardParams) -> tuple[list[Scene], list[GroupSpec]]:
    """Scenes grouped by log -> (synthetic stage-2 scenes, groups)."""
    starts = NavhardStartParams(offset_frames=params.offset_frames, num_starts=params.num_starts, seed=params.seed)
    eligible: list[tuple[str, list[Frame], int, str, str | None, str]] = []
    for log_name, group in groupby(scenes, key=lambda s: s.log_name):
        log_scenes = list(group)
        frames = _log_frames(log_scenes)
        index = {f.token: i for i, f in enumerate(frames)}
        stage_one = {s.token for s in log_scenes}
        for s in log_scenes:
            i = index[s.token]
            prev = frames[i - 1].token if i >= 1 and frames[i - 1].token in stage_one else None
            first = i - 1 if prev is not None else i
            if i + params.offset_frames >= len(frames) or first + params.offset_frames - (HISTORY_FRAMES - 1) < 0:
                continue
            if not _contiguous(frames, first, min(i + params.offset_frames + 8, len(frames) - 1)):
                continue
            eligible.append((log_name, frames, i, s.token, prev, s.map_location))
    if not eligible:
        return [], []
    picks = sorted(set(np.linspace(0, len(eligible) - 1, min(params.max_groups, len(eligible))).round().astype(int)))
    synthetic: dict[str, Scene] = {}
    groups = []
    for k in picks:
        log_name, frames, i, token, prev_token, location = eligible[k]
        made = []
        for cur in (i, i - 1) if prev_token is not None else (i,):
            tokens = []
            for start in perturbed_starts(frames, cur, starts):
                synthetic.setdefault(start.token, synthetic_scene(frames, start, log_name, location))
                tokens.append(start.token)
            made.append(tokens)
        groups.append(GroupSpec(log_name, token, prev_token, made[0], made[1] if len(made) > 1 else []))
    ordered = sorted(synthetic.values(), key=lambda s: (s.log_name, s.current_frame.timestamp_us, s.token))
    return ordered, groups


def groups_json(groups: list[GroupSpec]) -> bytes:
    return json.dumps([g.__dict__ for g in groups], indent=1).encode()


def read_groups(path: str | Path) -> list[GroupSpec]:
    return [GroupSpec(**g) for g in json.loads(Path(path).read_text())]


def resolve_groups(specs: list[GroupSpec], stage_one: Iterable[MetricCache], synthetic: Iterable[MetricCache],
                   ) -> tuple[list[NavhardGroup], list[str]]:
    """Groups whose caches all exist (a scene may have failed to cache or lost its features); the tokens
    of the stage-1 scenes dropped."""
    first = {c.token: c for c in stage_one}
    second = {c.token: c for c in synthetic}
    out, dropped = [], []
    for g in specs:
        now = [second[t] for t in g.synthetic_now if t in second]
        prev = [second[t] for t in g.synthetic_prev if t in second]
        paired = g.prev is not None
        if g.original not in first or not now or (paired and (g.prev not in first or not prev)):
            dropped.append(g.original)
            continue
        out.append(NavhardGroup(first[g.original], now, first[g.prev] if paired else None, prev))
    return out, dropped
