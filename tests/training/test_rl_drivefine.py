"""DriveFine hybrid RL with the real planner and the real scorer: merged traces, the clipped surrogate,
GRPO and refinement-RL directions, and gradient blocking during RL."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drivefine_core.models import DriveFinePlanner, PlannerBatch
from drivefine_core.training.grpo_mdm import clipped_token_loss, grpo_mdm_loss, rollout_mdm
from drivefine_core.training.params import GRPOParams, RefineRLParams
from drivefine_core.training.refine_rl import refine_rl_loss
from drivefine_core.training.reward import ScorerReward, collate_scenes

REFINE_KEYS = ("backbone.experts.refine.", "backbone.norms.refine.", "refine_head.")
GP = GRPOParams(group_size=6, decode_steps=4, merge_tau=2, temperature=1.0, kl_beta=0.05, bc_weight=0.1)


def _batch(scenes, n: int = 3):
    samples, caches = collate_scenes(scenes[:n])
    return PlannerBatch.of(samples), caches


def _changed(before: dict, model: torch.nn.Module) -> set[str]:
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_merged_trace_keeps_floor_s_over_tau_states_and_every_token_once(sft_drivefine: DriveFinePlanner, scenes) -> None:
    batch, _ = _batch(scenes)
    trace = sft_drivefine.drivefine.decode(batch, steps=5, temperature=1.0, return_trace=True,
                                         generator=torch.Generator().manual_seed(0)).trace
    merged = trace.merged(2)
    assert merged.steps == 2
    mask = merged.commit_mask()
    assert torch.equal(mask.sum(1), torch.ones_like(trace.tokens))  # each token counted once
    # the state before merged step 1 is the state before original step 2
    assert torch.equal(merged.state_before(1, 7), trace.state_before(2, 7))


def test_clip_stops_the_gradient_beyond_the_trust_region() -> None:
    logp = torch.tensor([[[0.0, 0.5]], [[0.0, -0.5]]], requires_grad=True)  # ratios 1 and e^0.5 / e^-0.5
    old = torch.zeros(2, 1, 2)
    mask = torch.ones(2, 1, 2, dtype=torch.bool)
    loss, logs = clipped_token_loss(logp, old, torch.tensor([1.0, -1.0]), mask, clip_eps=0.2)
    loss.backward()
    g = logp.grad
    assert g[0, 0, 0] < 0 and g[1, 0, 0] > 0  # inside the region: the usual policy gradient
    assert g[0, 0, 1] == 0 and g[1, 0, 1] == 0  # ratio outside [0.8, 1.2] in the advantage's direction
    assert logs["clip_frac"] == pytest.approx(0.5)


def test_grpo_shifts_probability_to_higher_reward_drafts(sft_drivefine: DriveFinePlanner, scenes) -> None:
    model = sft_drivefine.drivefine
    batch, caches = _batch(scenes)
    ro = rollout_mdm(model, None, batch, caches, ScorerReward("v1/pdms"), GP, torch.Generator().manual_seed(1))
    assert ro.rewards.std(axis=1).mean() > 0.01  # the group has something to learn from
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mask = ro.trace.commit_mask()
    for _ in range(3):  # PPO-style epochs over one rollout: pi_old stays fixed
        loss, _ = grpo_mdm_loss(model, ro, GRPOParams(**{**GP.model_dump(), "kl_beta": 0.0}))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        new = model.trace_logprobs(ro.batch, ro.trace)
    dlogp = ((new - ro.old_logp) * mask).sum((1, 2)).view(ro.rewards.shape).numpy()
    w = np.exp(dlogp - dlogp.max(axis=1, keepdims=True))
    reweighted = float(((w * ro.rewards).sum(1) / w.sum(1)).mean())
    assert reweighted > ro.rewards.mean() + 0.02, (reweighted, ro.rewards.mean())


def test_grpo_leaves_refinement_blocks_untouched(sft_drivefine: DriveFinePlanner, scenes) -> None:
    model = sft_drivefine.drivefine
    batch, caches = _batch(scenes)
    ref = DriveFinePlanner(sft_drivefine.params).drivefine  # any frozen policy will do for the KL term
    ro = rollout_mdm(model, ref, batch, caches, ScorerReward("v2/epdms"), GP, torch.Generator().manual_seed(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    loss, logs = grpo_mdm_loss(model, ro, GP)
    (loss + GP.bc_weight * model.generation_loss(batch)).backward()
    opt.step()
    changed = _changed(before, model)
    assert logs["kl"] > 0
    assert any(k.startswith("backbone.shared.") for k in changed)
    assert not [k for k in changed if k.startswith(REFINE_KEYS)]


def test_refinement_rl_trains_only_refinement_blocks_towards_better_drafts(sft_drivefine: DriveFinePlanner, scenes) -> None:
    model = sft_drivefine.drivefine
    batch, caches = _batch(scenes)
    reward = ScorerReward("v1/pdms")
    ro = rollout_mdm(model, None, batch, caches, reward, GP, torch.Generator().manual_seed(3))
    drafts, g = ro.trace.tokens, GP.group_size
    # the best and worst draft of each scene: log pi_refine(best | worst) must rise
    best, worst = ro.rewards.argmax(1), ro.rewards.argmin(1)
    idx = torch.arange(len(caches))
    pick_b, pick_w = idx * g + torch.as_tensor(best), idx * g + torch.as_tensor(worst)
    with torch.no_grad():
        lp0 = model.refine_logprobs(batch, drafts[pick_w], drafts[pick_b], 1.0).sum(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    offline = RefineRLParams(online_k=0, max_pairs=30, temperature=1.0)
    online = RefineRLParams(online_k=2, max_pairs=0, temperature=1.0)
    logs: dict[str, float] = {}
    for step, p in enumerate((offline, offline, offline, online)):
        loss, part = refine_rl_loss(model, batch, caches, drafts, ro.rewards, reward, p,
                                    torch.Generator().manual_seed(step))
        logs.update(part)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 2:
            with torch.no_grad():
                lp1 = model.refine_logprobs(batch, drafts[pick_w], drafts[pick_b], 1.0).sum(1)
    changed = _changed(before, model)
    assert changed and all(k.startswith(REFINE_KEYS) for k in changed), sorted(changed)[:4]
    assert logs["offline_pairs"] > 0 and "online_gain" in logs
    assert float((lp1 - lp0).mean()) > 0.1, (lp0, lp1)


def test_kl_anchor_pulls_the_generation_expert_back_to_the_sft_policy(sft_drivefine: DriveFinePlanner, scenes) -> None:
    """With no reward signal (a constant reward: zero advantages) only the KL term acts, and it must shrink
    the divergence of a policy that was pushed away from the SFT one."""
    import copy

    model = sft_drivefine.drivefine
    ref = copy.deepcopy(model).eval()
    with torch.no_grad():  # push the policy away from the SFT weights
        for q in model.backbone.experts["generate"].parameters():
            q.add_(0.3 * torch.randn(q.shape, generator=torch.Generator().manual_seed(0)))
    batch, caches = _batch(scenes)
    const = lambda c, t: np.ones(t.shape[:2])  # noqa: E731
    p = GRPOParams(**{**GP.model_dump(), "kl_beta": 1.0, "bc_weight": 0.0})
    ro = rollout_mdm(model, ref, batch, caches, const, p, torch.Generator().manual_seed(4))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    kls = []
    for _ in range(4):
        loss, logs = grpo_mdm_loss(model, ro, p)
        kls.append(logs["kl"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert kls[0] > 0 and kls[-1] < 0.7 * kls[0], kls


def test_without_generator_training_rl_moves_only_the_refinement_expert(sft_drivefine: DriveFinePlanner, scenes) -> None:
    """grpo.train_generator false: the rl stage's DriveFine run trains the refinement expert alone on the
    frozen generator's rollouts (the generation side, trunk and vision stay bit for bit the SFT ones)."""
    from drivefine_core.training.params import OptimParams, RLParams
    from drivefine_core.training.rl import train_rl

    model = sft_drivefine.drivefine
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rl = RLParams(optim=OptimParams(steps=3, batch_size=3, lr=1e-2, warmup_steps=0, min_lr_ratio=1.0),
                  grpo=GRPOParams(group_size=4, decode_steps=4, merge_tau=2, temperature=1.0, kl_beta=0.05,
                                  train_generator=False),
                  refine=RefineRLParams(online_k=1, max_pairs=4, temperature=1.0), validation_logs=0)
    result = train_rl(sft_drivefine, "drivefine", scenes, rl, ScorerReward("v1/pdms"))
    changed = _changed(before, model)
    assert changed and all(k.startswith(REFINE_KEYS) for k in changed), sorted(changed)[:4]
    assert len(changed) == len([k for k in before if k.startswith(REFINE_KEYS)])
    assert not any("loss_grpo" in row or "loss_bc" in row for row in result.history)
    assert any("loss_refine" in row for row in result.history)
    with pytest.raises(ValueError, match="nothing to train"):
        train_rl(sft_drivefine, "drivefine", scenes,
                 rl.model_copy(update={"refine": RefineRLParams(enabled=False)}), ScorerReward("v1/pdms"))


def test_a_rollout_for_refinement_rl_alone_skips_the_log_probabilities(sft_drivefine: DriveFinePlanner, scenes) -> None:
    batch, caches = _batch(scenes)
    ro = rollout_mdm(sft_drivefine.drivefine, None, batch, caches, ScorerReward("v1/pdms"), GP,
                     torch.Generator().manual_seed(5), logprobs=False)
    assert ro.old_logp is None and ro.ref_logp is None and ro.rewards.shape == (len(caches), GP.group_size)
    with pytest.raises(AssertionError, match="refinement RL only"):
        grpo_mdm_loss(sft_drivefine.drivefine, ro, GP)
