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


class MetricsParams(Section):
    version: Literal["v1", "v2", "both"] = "both"  # which score(s) evaluation reports; keys stay labelled
    map_radius_m: float = Field(100.0, gt=0)  # drivable map crop around the ego, devkit value
    extended_comfort_pairs: bool = True  # v2 EC against the scene 0.5 s earlier in the same log
    human_filter: bool = True  # v2 human filter on original (non-synthetic) scenes
    chunk_scenes: int = Field(256, ge=1)  # scenes per scoring call in evaluate_agents (memory bound)
    baselines: BaselineParams = BaselineParams()
