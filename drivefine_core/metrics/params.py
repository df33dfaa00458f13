"""Knobs of the scoring engine (the `metrics:` section of params.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivefine_core.params_base import Section


class BaselineParams(Section):
    mlp_hidden: int = Field(64, ge=4)
    mlp_epochs: int = Field(300, ge=1)
    mlp_lr: float = Field(3e-3, gt=0)
    seed: int = 0


class ReactiveAgentsParams(Section):
    """NAVSIM v2's reactive IDM vehicles (navsim_IDM_traffic_agents): docs/navsim-rules.md."""

    target_velocity: float = Field(10.0, gt=0)  # m/s when the vehicle's lane has no speed limit
    min_gap: float = Field(1.0, gt=0)  # m, IDM s0
    headway: float = Field(1.5, ge=0)  # s, IDM T
    accel_max: float = Field(1.0, gt=0)  # m/s^2, IDM a
    decel_max: float = Field(2.0, gt=0)  # m/s^2, IDM b (positive)
    radius_m: float = Field(100.0, gt=0)  # vehicles further from the ego stop being simulated
    snap_threshold_m: float = Field(3.0, ge=0)  # further from their lane's centreline: not simulated


class NavhardParams(Section):
    """Two-stage navhard scoring of the evaluate split (stage-2 caches built by the metric_cache stage)."""

    enabled: bool = True
    split: str = "test"  # the evaluate split
    reactive_agents: bool = True  # both stages with reactive IDM vehicles (NAVSIM's default); else log replay
    max_groups: int = Field(6, ge=1)  # stage-1 scenes scored (spread evenly over the split): keeps it fast
    num_starts: int = Field(4, ge=1)  # perturbed stage-2 starts per stage-1 scene
    offset_frames: int = Field(8, ge=1)  # stage 2 starts 8 frames (4 s) after stage 1
    seed: int = 0
    reactive: ReactiveAgentsParams = ReactiveAgentsParams()


class MetricsParams(Section):
    version: Literal["v1", "v2", "both"] = "both"  # which score(s) evaluation reports; keys stay labelled
    map_radius_m: float = Field(100.0, gt=0)  # drivable map crop around the ego, devkit value
    extended_comfort_pairs: bool = True  # v2 EC against the scene 0.5 s earlier in the same log
    human_filter: bool = True  # v2 human filter on original (non-synthetic) scenes
    chunk_scenes: int = Field(256, ge=1)  # scenes per scoring call in evaluate_agents (memory bound)
    baselines: BaselineParams = BaselineParams()
    navhard: NavhardParams = NavhardParams()
