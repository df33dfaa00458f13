"""History-initialised and noise-initialised flow matching."""

from __future__ import annotations

import math

import pytest
import torch

from drivefine_core.models import SpanVLAPlanner, history_extrapolation


def test_history_extrapolation_straight_and_arc() -> None:
    straight = torch.tensor([[[-3.0, 0, 0], [-2.0, 0, 0], [-1.0, 0, 0], [0, 0, 0]]])
    out = history_extrapolation(straight)
    assert torch.allclose(out[0, :, 0], torch.arange(1.0, 9.0))
    assert torch.allclose(out[0, :, 1:], torch.zeros(8, 2))
    # a circle of radius r driven at a fixed angle per step: the extrapolation must stay on it
    r, dphi = 20.0, 0.05
    phis = torch.arange(-3, 1) * dphi
    hist = torch.stack([r * torch.sin(phis), r * (1 - torch.cos(phis)), phis], -1)[None]
    fut = history_extrapolation(hist)
    k = torch.arange(1, 9) * dphi
    expected = torch.stack([r * torch.sin(k), r * (1 - torch.cos(k)), k], -1)
    assert torch.allclose(fut[0], expected, atol=1e-4)


def test_zero_flow_steps_return_history_init(spanvla: SpanVLAPlanner, batch: dict) -> None:
    out = spanvla.plan(batch, "flow", steps=0)
    assert torch.allclose(out.poses, history_extrapolation(batch["history"]), atol=1e-6)
    moved = spanvla.plan(batch, "flow", steps=5)
    assert not torch.allclose(moved.poses, out.poses)


def test_stochastic_flow_sampling(spanvla: SpanVLAPlanner, batch: dict) -> None:
    a = spanvla.plan(batch, "flow", seed=1, noise_std=0.2).poses
    b = spanvla.plan(batch, "flow", seed=2, noise_std=0.2).poses
    c = spanvla.plan(batch, "flow", seed=1, noise_std=0.2).poses
    assert not torch.allclose(a, b) and torch.equal(a, c)
    d = spanvla.plan(batch, "flow", seed=1, stochastic=True).poses  # params.flow_sample_noise
    assert not torch.allclose(d, spanvla.plan(batch, "flow").poses)


def test_flow_reads_every_kth_backbone_layer(spanvla: SpanVLAPlanner) -> None:
    expert = spanvla.flow.expert
    assert expert.read_layers == [1, 3]  # depth 4, k = 2
    assert expert.layer_map == [1, 3]
    assert math.isclose(expert.layers[0].q.out_features, spanvla.params.width)  # backbone head size kept


def test_flow_depth_smaller_than_read_layers() -> None:
    from tests.models.conftest import tiny_params

    p = tiny_params(depth=6, flow_every_k=1, flow_depth=2)
    planner = SpanVLAPlanner(p)
    assert planner.flow.expert.layer_map == [2, 5]


def test_state_token_reads_the_ego_state(batch: dict) -> None:
    """With pi0's state token the expert's plan depends on velocity / command even with the VLM's keys /
    values fixed; without it, only through them."""
    from tests.models.conftest import tiny_params

    torch.manual_seed(0)
    planner = SpanVLAPlanner(tiny_params(flow_state_token=True)).eval()
    kv = planner.ar.encode_prompt(batch).kv
    faster = {**batch, "velocity": batch["velocity"] + 3.0}
    a, b = planner.flow.sample(batch, kv), planner.flow.sample(faster, kv)
    assert not torch.allclose(a, b)
    assert planner.flow.state_of(batch).shape == (batch["history"].shape[0], 8)
    plain = SpanVLAPlanner(tiny_params()).eval()
    kv = plain.ar.encode_prompt(batch).kv
    assert plain.flow.state_of(batch) is None
    assert torch.equal(plain.flow.sample(batch, kv), plain.flow.sample(faster, kv))
    with torch.no_grad(), pytest.raises(ValueError, match="state token"):
        plain.flow.expert(torch.zeros(1, 8, 3), torch.zeros(1), kv, torch.zeros(1, 8))
