"""RL checkpoint selection on held-out logs (training/rl_select.py) with the real planners: a run whose
updates only hurt validation hands back the step-0 (SFT) weights, held-out logs are never trained on, and
the params are checked against the logs there are."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from drivefine_core.models import Planner, PlannerBatch, SpanVLAPlanner
from drivefine_core.models.modes import RL_MODE
from drivefine_core.training.params import FlowGRPOParams, GRPOParams, OptimParams, RefineRLParams, RLParams
from drivefine_core.training.reward import collate_scenes
from drivefine_core.training.rl import train_rl
from drivefine_core.training.rl_select import held_out_logs, split_by_log

HELD_OUT = "toy_log"  # the toy logs sorted: toy_cross, toy_curve, toy_log -> the last one is held out


def _rl(steps: int, validation_logs: int = 1, validate_every: int = 2, lr: float = 1e-2) -> RLParams:
    return RLParams(optim=OptimParams(steps=steps, batch_size=3, lr=lr, warmup_steps=0, min_lr_ratio=1.0),
                    grpo=GRPOParams(group_size=4, decode_steps=4, merge_tau=2, temperature=1.0, kl_beta=0.0,
                                    bc_weight=0.0),
                    refine=RefineRLParams(online_k=0, max_pairs=4, temperature=1.0),
                    flow=FlowGRPOParams(group_size=6, kl_beta=0.0, w_negative=0.0, w_recovery=0.0, step_noise=0.05),
                    validation_logs=validation_logs, validate_every=validate_every)


def _greedy(planner: Planner, variant: str, scenes) -> np.ndarray:
    samples, _ = collate_scenes(list(scenes))
    return planner.plan(PlannerBatch.of(samples), RL_MODE[variant], seed=0).poses.numpy().astype(np.float64)


class SpiteReward:
    """Pays for progress on the training logs and penalises any change of the plan on the held-out log:
    every update RL makes pushes the greedy plans away from the SFT ones there, so validation can only
    get worse than at step 0. Records which scenes were scored with groups (rollouts) and alone (greedy)."""

    def __init__(self, sft_plans: dict[str, np.ndarray]) -> None:
        self.sft_plans = sft_plans
        self.grouped: set[str] = set()
        self.single: set[str] = set()

    def __call__(self, caches, trajectories: np.ndarray) -> np.ndarray:
        s, g = trajectories.shape[:2]
        (self.grouped if g > 1 else self.single).update(c.token for c in caches)
        out = np.zeros((s, g))
        for i, c in enumerate(caches):
            if c.log_name == HELD_OUT:
                out[i] = -np.abs(trajectories[i] - self.sft_plans[c.token]).sum((-2, -1))
            else:
                out[i] = trajectories[i, :, -1, 0] / 10.0
        return out


@pytest.mark.parametrize("variant", ["spanvla", "drivefine"])
def test_updates_that_hurt_validation_hand_back_the_step0_weights(sft_run, scenes, variant: str) -> None:
    sft_planner: Planner = copy.deepcopy(sft_run[0][variant])
    held = [(s, c) for s, c in scenes if c.log_name == HELD_OUT]
    plans = _greedy(sft_planner, variant, held)
    reward = SpiteReward({c.token: plans[i] for i, (_, c) in enumerate(held)})
    module = getattr(sft_planner, "drivefine" if variant == "drivefine" else "flow")
    start = {k: v.clone() for k, v in module.state_dict().items()}
    result = train_rl(sft_planner, variant, scenes, _rl(4), reward)
    vals = {int(r["step"]): r["validation_reward"] for r in result.history if "validation_reward" in r}
    assert sorted(vals) == [0, 2, 4]
    assert vals[0] == pytest.approx(0.0, abs=1e-9)
    # the updates did move the held-out plans (so the final weights are worse there than the SFT ones) ...
    assert max(vals[2], vals[4]) < -1e-3, vals
    # ... and the selection handed back the SFT weights exactly
    assert result.final("selected_step") == 0 and result.final("validation_reward_best") == vals[0]
    assert all(torch.equal(start[k], v) for k, v in module.state_dict().items())
    assert np.array_equal(_greedy(sft_planner, variant, held), plans)


def test_held_out_logs_are_never_drawn_for_training(sft_spanvla: SpanVLAPlanner, scenes) -> None:
    held = [(s, c) for s, c in scenes if c.log_name == HELD_OUT]
    reward = SpiteReward({c.token: np.zeros((8, 3)) for _, c in held})
    logged: list[tuple[int, dict[str, float]]] = []
    result = train_rl(copy.deepcopy(sft_spanvla), "spanvla", scenes, _rl(6, validate_every=3, lr=1e-3), reward,
                      log_metrics=lambda m, step: logged.append((step, m)))
    train_tokens = {c.token for _, c in scenes if c.log_name != HELD_OUT}
    assert reward.grouped == train_tokens  # 6 steps of 3 scenes: every training scene, no held-out one
    assert reward.single == {c.token for _, c in held}  # validation scored the held-out scenes only
    assert [s for s, m in logged if "rl_spanvla/validation_reward" in m] == [0, 3, 6]
    assert result.final("validation_scenes") == len(held)


def test_split_is_by_log_deterministic_and_checked(sft_spanvla: SpanVLAPlanner, scenes) -> None:
    train, val = split_by_log(scenes, 1)
    assert {c.log_name for _, c in val} == {HELD_OUT} and HELD_OUT not in {c.log_name for _, c in train}
    assert len(train) + len(val) == len(scenes)
    assert held_out_logs(list(reversed(scenes)), 2) == ["toy_curve", "toy_log"]  # order of the scenes is irrelevant
    _, capped = split_by_log(scenes, 1, max_scenes=2)
    assert [c.token for _, c in capped] == ["s6", "lead"]  # evenly spaced: first and last
    assert split_by_log(scenes, 0)[0] is scenes
    with pytest.raises(ValueError, match="rl.validation_logs=3"):
        split_by_log(scenes, 3)  # 3 toy logs: none would be left for training
    with pytest.raises(ValueError, match="rl.validation_logs=4"):  # before any training
        train_rl(sft_spanvla, "spanvla", scenes, _rl(2, validation_logs=4), SpiteReward({}))
    with pytest.raises(ValueError, match="validate_every"):
        RLParams(validation_logs=1, validate_every=0)


def test_a_resumed_run_keeps_the_best_found_before_the_interruption(sft_spanvla: SpanVLAPlanner, scenes, tmp_path) -> None:
    """Validation rewards closeness to the held-out plans after 2 steps, so step 2 is the best; a run killed
    at step 3 and resumed (its checkpoint at step 2) must still hand back the step-2 weights."""
    two = copy.deepcopy(sft_spanvla)
    held = [(s, c) for s, c in scenes if c.log_name == HELD_OUT]
    train_rl(two, "spanvla", scenes, _rl(2, lr=1e-3), SpiteReward({c.token: np.zeros((8, 3)) for _, c in held}))
    plans = _greedy(two, "spanvla", held)
    reward = SpiteReward({c.token: plans[i] for i, (_, c) in enumerate(held)})
    rl = _rl(4, lr=1e-3).model_copy(update={"optim": _rl(4, lr=1e-3).optim.model_copy(update={"checkpoint_every": 2})})

    def kill_at_3(metrics: dict[str, float], step: int) -> None:
        if step == 3:
            raise StopTraining

    from drivefine_core.training.loop import StopTraining

    with pytest.raises(StopTraining):
        train_rl(copy.deepcopy(sft_spanvla), "spanvla", scenes, rl, reward, checkpoint_dir=tmp_path,
                 log_metrics=kill_at_3)
    resumed = copy.deepcopy(sft_spanvla)  # a new process starts from the SFT planner again
    result = train_rl(resumed, "spanvla", scenes, rl, reward, checkpoint_dir=tmp_path)
    assert result.resumed_from == 2 and result.final("selected_step") == 2
    assert [int(r["step"]) for r in result.history if "validation_reward" in r] == [0, 2, 4]
    assert all(torch.equal(two.flow.state_dict()[k], v) for k, v in resumed.flow.state_dict().items())
