"""SFT: every objective's loss falls; the flow phase leaves the frozen VLM untouched."""

from __future__ import annotations

import numpy as np
import torch

from drivefine_core.models import SpanVLAPlanner
from drivefine_core.training.params import OptimParams, SFTParams
from drivefine_core.training.sft import train_phase
from tests.training.scenes import tiny_params, toy_scenes


def _mean(history: list[dict], key: str, rows: slice) -> float:
    """Mean over the logged rows that have `key` (the refinement loss starts part-way through)."""
    return float(np.mean([h[key] for h in [h for h in history if key in h][rows]]))


def test_every_sft_loss_falls(sft_run) -> None:
    _, results, _ = sft_run
    checks = {"drivefine": ("loss_mdm", "loss_refine"), "ar": ("loss_ar",), "flow": ("loss_flow",)}
    for phase, keys in checks.items():
        hist = results[phase].history
        for key in keys:
            first, last = _mean(hist, key, slice(0, 3)), _mean(hist, key, slice(-3, None))
            assert last < 0.8 * first, (phase, key, first, last)


def test_flow_phase_trains_only_the_expert() -> None:
    torch.manual_seed(0)
    p = tiny_params()
    scenes = toy_scenes(p)
    planner = SpanVLAPlanner(p)
    before = {k: v.clone() for k, v in planner.state_dict().items()}
    sft = SFTParams(flow=OptimParams(steps=2, batch_size=3, lr=1e-2, warmup_steps=0), train_flow_noise=False)
    train_phase(planner, "flow", [s for s, _ in scenes], sft)
    after = planner.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("flow.") for k in changed), sorted(changed)[:5]
