from __future__ import annotations

import copy

import pytest
import torch

from drivefine_core.models import DriveFinePlanner, Planner, SpanVLAPlanner
from drivefine_core.training.params import OptimParams, SFTParams
from drivefine_core.training.sft import train_sft
from tests.training.scenes import tiny_params, toy_scenes

torch.set_num_threads(1)


def sft_params(steps: int = 40) -> SFTParams:
    fast = dict(batch_size=6, lr=1e-2, warmup_steps=2, log_every=1)
    # the refinement expert trains over the last 60% of the DriveFine steps: enough for its loss to fall here
    return SFTParams(drivefine=OptimParams(steps=steps, **fast), ar=OptimParams(steps=15, **fast),
                     flow=OptimParams(steps=15, **{**fast, "lr": 3e-3}), train_flow_noise=False, refine_start=0.4)


@pytest.fixture(scope="session")
def sft_run():
    """One SFT of both variants on the toy scenes, shared by the tests (SFT is the slow part)."""
    torch.manual_seed(0)
    p = tiny_params()
    scenes = toy_scenes(p)
    planners: dict[str, Planner] = {}
    results = {}
    for variant in ("drivefine", "spanvla"):
        planners[variant] = Planner.build(variant, p)
        results.update(train_sft(planners[variant], variant, [s for s, _ in scenes], sft_params()))
    return planners, results, scenes


@pytest.fixture
def sft_drivefine(sft_run) -> DriveFinePlanner:
    """A private copy: tests may train it."""
    return copy.deepcopy(sft_run[0]["drivefine"])


@pytest.fixture
def sft_spanvla(sft_run) -> SpanVLAPlanner:
    """A private copy: tests may train it."""
    return copy.deepcopy(sft_run[0]["spanvla"])


@pytest.fixture
def scenes(sft_run):
    return sft_run[2]
