"""SFT: every objective's loss falls; the flow phase leaves the frozen VLM untouched and reads its cached prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drivefine_core.features.dataset import collate_features
from drivefine_core.models import PlannerBatch, SpanVLAPlanner
from drivefine_core.training.params import OptimParams, SFTParams
from drivefine_core.training.prompt_cache import WithPromptKV, prompt_kv_of
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


def test_flow_experts_trained_side_by_side_train_as_each_would_alone() -> None:
    """Each expert's gradient is clipped by its own norm (the clip is active at this max_grad_norm): the history
    expert trained beside the noise-initialised one ends with the weights it has when trained alone."""
    p = tiny_params()
    scenes = [s for s, _ in toy_scenes(p)]
    torch.manual_seed(0)
    start = SpanVLAPlanner(p)
    weights = {}
    for both in (True, False):
        planner = SpanVLAPlanner(p)
        planner.load_state_dict(start.state_dict())
        optim = OptimParams(steps=3, batch_size=3, lr=1e-2, warmup_steps=0, max_grad_norm=0.05)
        hist = train_phase(planner, "flow", scenes, SFTParams(flow=optim, train_flow_noise=both)).history
        assert all(r["grad_norm"] > 0.05 for r in hist)
        weights[both] = {k: v for k, v in planner.state_dict().items() if k.startswith("flow.")}
    assert all(torch.allclose(weights[True][k], weights[False][k], atol=1e-6) for k in weights[False])


def test_flow_phase_prompt_cache_trains_as_encoding_every_step() -> None:
    """The cached prompt keys/values are the VLM's own: the same losses and weights as encoding each step."""
    p = tiny_params()
    scenes = [s for s, _ in toy_scenes(p)]
    torch.manual_seed(0)
    start = SpanVLAPlanner(p)
    runs = {}
    for mb in (0.0, 64.0):
        planner = SpanVLAPlanner(p)
        planner.load_state_dict(start.state_dict())
        sft = SFTParams(flow=OptimParams(steps=4, batch_size=3, lr=1e-2, warmup_steps=0), flow_prompt_cache_mb=mb)
        runs[mb] = (train_phase(planner, "flow", scenes, sft).history, planner.state_dict())
    (h0, w0), (h1, w1) = runs[0.0], runs[64.0]
    assert [r["loss_flow"] for r in h0] == pytest.approx([r["loss_flow"] for r in h1], rel=1e-5)
    assert [r["loss_flow-noise"] for r in h0] == pytest.approx([r["loss_flow-noise"] for r in h1], rel=1e-5)
    assert all(torch.allclose(w0[k], w1[k], atol=1e-5) for k in w0)


def test_prompt_cache_fits_its_budget_or_is_not_built() -> None:
    p = tiny_params()
    scenes = [s for s, _ in toy_scenes(p)]
    planner = SpanVLAPlanner(p)
    encode = lambda b: planner.ar.encode_prompt(b).kv  # noqa: E731
    kv = prompt_kv_of(encode, scenes, 64.0, torch.device("cpu"), chunk=4)
    assert kv is not None and kv.shape[:3] == (len(scenes), p.depth, 2)
    batch = PlannerBatch.of(collate_features(scenes[5:7]))
    with torch.no_grad():
        direct = planner.ar.encode_prompt(batch).kv
    assert torch.allclose(kv[5:7, -1, 0], direct[-1][0], atol=1e-6)
    assert prompt_kv_of(encode, scenes, kv[0].numel() * 4 * len(scenes) / 2**20 * 0.99, torch.device("cpu")) is None
    assert prompt_kv_of(encode, scenes, 0.0, torch.device("cpu")) is None


def test_cached_prompts_cannot_train_the_vlm() -> None:
    p = tiny_params()
    scenes = [s for s, _ in toy_scenes(p)]
    planner = SpanVLAPlanner(p)
    kv = prompt_kv_of(lambda b: planner.ar.encode_prompt(b).kv, scenes[:3], 64.0, torch.device("cpu"))
    assert kv is not None
    batch = PlannerBatch.of(collate_features(list(WithPromptKV(scenes[:3], kv))))
    assert "prompt_kv" in batch and planner(batch, "flow")[0].isfinite()
    with pytest.raises(ValueError, match="prompt_kv.*'ar'"):
        planner(batch, ("ar", "flow"))
