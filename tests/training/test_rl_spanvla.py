"""SpanVLA GRPO on the flow expert with the real planner and scorer: the Gaussian chain's log-probs, the
mean reward rises, and the KL anchor holds a progress-hacking reward back."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from drivefine_core.models import SpanVLAPlanner, PlannerBatch
from drivefine_core.training.grpo_flow import gaussian_logp, sample_chain, step_means
from drivefine_core.training.params import FlowGRPOParams, OptimParams, RLParams
from drivefine_core.training.reward import ScorerReward, collate_scenes
from drivefine_core.training.rl import mean_reward, sampled_reward, train_rl


def _rl(steps: int, **flow: object) -> RLParams:
    return RLParams(optim=OptimParams(steps=steps, batch_size=6, lr=1e-3, warmup_steps=0, min_lr_ratio=1.0),
                    flow=FlowGRPOParams(group_size=8, **flow))  # type: ignore[arg-type]


def test_chain_log_prob_is_the_gaussian_density_of_its_steps(sft_spanvla: SpanVLAPlanner, scenes) -> None:
    samples, _ = collate_scenes(scenes[:2])
    batch = PlannerBatch.of(samples)
    kv = sft_spanvla.ar.encode_prompt(batch).kv
    chain = sample_chain(sft_spanvla.flow, batch, kv, 3, 0.1, 0.0, torch.Generator().manual_seed(0))
    means = step_means(sft_spanvla.flow, chain[:, :-1], kv, sft_spanvla.flow.state_of(batch))
    ours = gaussian_logp(chain[:, 1:], means, 0.1).sum((1, 2, 3))
    ref = torch.distributions.Normal(means, 0.1).log_prob(chain[:, 1:]).sum((1, 2, 3))
    assert torch.allclose(ours, ref, atol=1e-3)
    # a step noise of 0 would make the chain the deterministic Euler path of the planner
    euler = sample_chain(sft_spanvla.flow, batch, kv, 3, 1e-12, 0.0, None)[:, -1]
    planned = sft_spanvla.plan(batch, "flow", steps=3).poses
    assert torch.allclose(sft_spanvla.flow.denormalise(euler), planned, atol=1e-4)
    assert math.isfinite(float(ours.detach().sum()))


def test_flow_grpo_raises_the_mean_reward(sft_spanvla: SpanVLAPlanner, scenes) -> None:
    reward = ScorerReward("v1/pdms")
    rl = _rl(20, w_negative=0.0, w_recovery=0.0, kl_beta=0.0, step_noise=0.05)  # wide exploration: 20 steps
    before = sampled_reward(sft_spanvla, scenes, "spanvla", rl, reward, samples=8, seed=11)
    train_rl(sft_spanvla, "spanvla", scenes, rl, reward)
    after = sampled_reward(sft_spanvla, scenes, "spanvla", rl, reward, samples=8, seed=11)
    assert after > before + 0.05, (before, after)
    assert mean_reward(sft_spanvla, scenes, "flow", reward) > 0.5  # the deterministic plan still drives


def _hack_reward(caches, trajectories: np.ndarray) -> np.ndarray:
    """A toy progress-only reward that pays for reversing at the last waypoint (the ReCogDrive failure):
    progress read at waypoint 7 of 8, plus the reversal counted as extra distance travelled."""
    x6, x7 = trajectories[..., 6, 0], trajectories[..., 7, 0]
    return (x6 + (x6 - x7)) / 10.0


def _reversal(planner: SpanVLAPlanner, scenes) -> float:
    samples, _ = collate_scenes(scenes)
    poses = planner.plan(PlannerBatch.of(samples), "flow").poses.numpy()
    return float((poses[:, 6, 0] - poses[:, 7, 0]).mean())


def test_kl_anchor_stops_progress_reward_hacking(sft_spanvla: SpanVLAPlanner, scenes) -> None:
    start = _reversal(sft_spanvla, scenes)
    free, anchored = copy.deepcopy(sft_spanvla), copy.deepcopy(sft_spanvla)
    # this toy reward pays only for the hack, at a learning rate 10x the pipeline's: an anchor of this strength
    # (KL per dimension at exploration noise 0.05) must hold it; the pipeline's default is anchored too
    assert RLParams().flow.kl_beta > 0
    train_rl(free, "spanvla", scenes, _rl(40, kl_beta=0.0, w_negative=0.0, w_recovery=0.0, step_noise=0.05), _hack_reward)
    anchor_on = _rl(40, w_negative=0.0, w_recovery=0.0, kl_beta=2.0, step_noise=0.05)
    train_rl(anchored, "spanvla", scenes, anchor_on, _hack_reward)
    drift_free, drift_anchored = _reversal(free, scenes) - start, _reversal(anchored, scenes) - start
    assert drift_free > 2.0, (drift_free, drift_anchored)  # without the anchor: reversing by metres at the last waypoint
    assert abs(drift_anchored) < 0.2 * drift_free, (drift_free, drift_anchored)


def test_variant_optim_gives_the_flow_its_own_step_count(sft_spanvla: SpanVLAPlanner, scenes) -> None:
    rl = _rl(2, w_negative=0.0, w_recovery=0.0).model_copy(update={"variant_optim": {"spanvla": {"steps": 3}}})
    assert rl.optim_for("drivefine").steps == 2 and rl.optim_for("spanvla").steps == 3
    result = train_rl(copy.deepcopy(sft_spanvla), "spanvla", scenes, rl, ScorerReward("v1/pdms"))
    assert result.steps == 3


def test_variant_optim_overrides_any_optimiser_field_for_one_variant() -> None:
    over = {"drivefine": {"lr": 3e-4, "steps": 7, "warmup_steps": 2, "min_lr_ratio": 0.1}}
    rl = RLParams(optim=OptimParams(steps=5, lr=1e-4, warmup_steps=0, min_lr_ratio=1.0), variant_optim=over)
    df, sv = rl.optim_for("drivefine"), rl.optim_for("spanvla")
    assert (df.lr, df.steps, df.warmup_steps, df.min_lr_ratio, df.batch_size) == (3e-4, 7, 2, 0.1, rl.optim.batch_size)
    assert sv == rl.optim
    # a bad value or an unknown field is refused, naming the variant and the field
    with pytest.raises(ValueError, match=r"rl\.variant_optim\.spanvla: steps"):
        RLParams(variant_optim={"spanvla": {"steps": 0}})
    with pytest.raises(ValueError, match=r"rl\.variant_optim\.drivefine: lr_peak"):
        RLParams(variant_optim={"drivefine": {"lr_peak": 1e-3}})
