"""Hybrid RL runs on the shared loop: DriveFine (GRPO on the generation expert + refinement RL) and SpanVLA
(GRPO on the flow expert with negative / recovery rewards). Each keeps a frozen copy of its SFT policy for
the KL anchor; the copy is taken before a checkpoint is resumed, so it is always the SFT policy."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch import Tensor, nn

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models import DriveFineModel, DriveFinePlanner, Planner, PlannerBatch, SpanVLAPlanner, repeat_batch
from drivefine_core.models.modes import RL_MODE
from drivefine_core.models.planner import tokens_to_poses
from drivefine_core.training.data import SeededBatches
from drivefine_core.training.grpo_flow import grpo_flow_loss, rollout_flow, sample_chain
from drivefine_core.training.grpo_mdm import grpo_mdm_loss, rollout_mdm
from drivefine_core.training.loop import MetricsCallback, Trainer, TrainResult, make_accelerator
from drivefine_core.training.negatives import SceneTargets, build_scene_targets
from drivefine_core.training.params import RLParams
from drivefine_core.training.refine_rl import refine_rl_loss
from drivefine_core.training.reward import RewardFn, collate_scenes
from drivefine_core.training.rl_select import RLSelection

Scenes = Sequence[tuple[dict[str, Any], MetricCache]]
EVAL_MODES = RL_MODE


def frozen_copy(module: nn.Module) -> nn.Module:
    ref = copy.deepcopy(module).eval()
    for q in ref.parameters():
        q.requires_grad_(False)
    return ref


@torch.no_grad()
def mean_reward(planner: Planner, scenes: Scenes, mode: str, reward_fn: RewardFn, batch_size: int = 16) -> float:
    """Mean reward of the planner's deterministic plan (seed 0) over the scenes."""
    was_training = planner.training
    planner.eval()
    total, n = 0.0, 0
    for start in range(0, len(scenes), batch_size):
        samples, caches = collate_scenes(list(scenes[start : start + batch_size]))
        poses = planner.plan(PlannerBatch.of(samples, planner.device), mode, seed=0).poses
        r = reward_fn(caches, poses.cpu().numpy()[:, None].astype(np.float64))
        total, n = total + float(np.sum(r)), n + len(caches)
    planner.train(was_training)
    return total / max(n, 1)


@torch.no_grad()
def sampled_reward(planner: Planner, scenes: Scenes, variant: str, rl: RLParams, reward_fn: RewardFn,
                   samples: int = 8, seed: int = 0) -> float:
    """Mean reward of the stochastic RL policy (the one GRPO optimises: temperature sampling for DriveFine,
    the Gaussian Euler chain for SpanVLA) over the scenes, `samples` draws each, seeded."""
    samples_, caches = collate_scenes(list(scenes))
    batch = PlannerBatch.of(samples_, planner.device)
    g = torch.Generator(device=planner.device).manual_seed(seed)
    rep = repeat_batch(batch, samples)
    if variant != planner.family:
        raise ValueError(f"RL variant '{variant}' given a {planner.family} planner")
    if isinstance(planner, DriveFinePlanner):
        tokens = planner.drivefine.decode(rep, steps=rl.grpo.decode_steps, temperature=rl.grpo.temperature,
                                          generator=g).tokens
        poses = tokens_to_poses(tokens)
    elif isinstance(planner, SpanVLAPlanner):
        kv = planner.ar.encode_prompt(rep).kv
        chain = sample_chain(planner.flow, rep, kv, planner.params.flow_steps, rl.flow.step_noise,
                             rl.flow.init_noise, g)
        poses = planner.flow.denormalise(chain[:, -1])
    else:
        raise ValueError(f"unknown RL variant '{variant}' (variants: drivefine, spanvla)")
    r = reward_fn(caches, poses.cpu().numpy().astype(np.float64).reshape(len(caches), samples, 8, 3))
    return float(np.mean(r))


def _trainer(planner: Planner, params: list[nn.Parameter], rl: RLParams, variant: str, acc: Accelerator | None,
             checkpoint_dir: str | Path | None, log_metrics: MetricsCallback | None) -> Trainer:
    name = f"rl_{variant}"
    return Trainer(planner, params, rl.optim_for(variant), accelerator=acc or make_accelerator(),
                   checkpoint_dir=checkpoint_dir, log_metrics=log_metrics, name=name,
                   run_key=f"{name}/{rl.model_dump_json()}")


def _scene_batches(scenes: Scenes, trainer: Trainer):
    p, acc = trainer.p, trainer.acc
    order = SeededBatches(scenes, p.batch_size, p.seed, acc.process_index, acc.num_processes, collate=collate_scenes,
                          grad_accum=p.grad_accum)

    def batch_fn(k: int) -> tuple[PlannerBatch, list[MetricCache]]:
        samples, caches = order(k)
        return PlannerBatch.of(samples, acc.device), caches

    return batch_fn


def drivefine_rl_loss(model: DriveFineModel, ref: DriveFineModel | None, batch: PlannerBatch,
                      caches: list[MetricCache], reward_fn: RewardFn, rl: RLParams,
                      g: torch.Generator | None) -> tuple[Tensor, dict[str, float]]:
    """One DriveFine RL step's loss on a batch of scenes: GRPO on the generation expert (rollouts drawn here),
    + the behaviour-cloning anchor, + refinement RL on the rollouts' drafts. Without grpo.train_generator the
    rollouts only feed refinement RL (the generation side is not trained, so its terms are not computed)."""
    g_p, r_p = rl.grpo, rl.refine
    ro = rollout_mdm(model, ref, batch, caches, reward_fn, g_p, g, logprobs=g_p.train_generator)
    loss = torch.zeros((), device=ro.advantages.device)
    logs: dict[str, float] = {"reward": float(ro.rewards.mean()), "reward_std": float(ro.rewards.std(axis=1).mean())}
    if g_p.train_generator:
        loss, grpo_logs = grpo_mdm_loss(model, ro, g_p)
        logs.update(grpo_logs)
        logs["loss_grpo"] = float(loss.detach())
        if g_p.bc_weight > 0:
            bc = model.generation_loss(batch, g)
            loss = loss + g_p.bc_weight * bc
            logs["loss_bc"] = float(bc.detach())
    if r_p.enabled and r_p.weight > 0:
        rloss, rlogs = refine_rl_loss(model, batch, caches, ro.trace.tokens, ro.rewards, reward_fn, r_p, g)
        loss = loss + r_p.weight * rloss
        logs.update({"loss_refine": float(rloss.detach()), **{f"refine_{k}": v for k, v in rlogs.items()}})
    logs["loss"] = float(loss.detach())
    return loss, logs


def train_rl_drivefine(planner: DriveFinePlanner, scenes: Scenes, rl: RLParams, reward_fn: RewardFn, *,
                       accelerator: Accelerator | None = None, checkpoint_dir: str | Path | None = None,
                       log_metrics: MetricsCallback | None = None) -> TrainResult:
    """GRPO on the generation expert + offline / online refinement RL, one optimizer over DriveFine (over the
    refinement expert alone without grpo.train_generator)."""
    model = planner.drivefine
    if not rl.grpo.train_generator and not (rl.refine.enabled and rl.refine.weight > 0):
        raise ValueError("rl: grpo.train_generator false and refinement RL off leave DriveFine nothing to train")
    ref = frozen_copy(model) if rl.grpo.kl_beta > 0 and rl.grpo.train_generator else None
    trained = list(model.parameters()) if rl.grpo.train_generator else model.refinement_parameters()
    trainer = _trainer(planner, trained, rl, "drivefine", accelerator, checkpoint_dir, log_metrics)
    if ref is not None:
        ref.to(trainer.acc.device)
    select = RLSelection(planner, model, scenes, rl, RL_MODE["drivefine"], reward_fn, log_metrics)
    scenes = select.train_scenes  # without the held-out logs (all scenes when validation is off)

    def loss_fn(item: tuple[PlannerBatch, list[MetricCache]], g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        batch, caches = item
        return drivefine_rl_loss(model, ref, batch, caches, reward_fn, rl, g)  # type: ignore[arg-type]

    select.start(trainer)
    return select.finish(trainer.fit(_scene_batches(scenes, trainer), loss_fn, select.on_step))


def train_rl_spanvla(planner: SpanVLAPlanner, scenes: Scenes, rl: RLParams, reward_fn: RewardFn, *,
                     accelerator: Accelerator | None = None, checkpoint_dir: str | Path | None = None,
                     log_metrics: MetricsCallback | None = None) -> TrainResult:
    """GRPO on the flow expert (VLM frozen) with the negative / recovery shaped reward."""
    f_p = rl.flow
    policy = planner.flow
    ref = frozen_copy(policy) if f_p.kl_beta > 0 else None
    shifts, speeds = (f_p.negative_shifts_m, f_p.negative_speed_factors) if f_p.w_negative > 0 else ([], [])
    targets: dict[str, SceneTargets] = {}  # mined when a scene is first drawn (deterministic, so resume-safe)

    def scene_targets(caches: list[MetricCache]) -> list[SceneTargets]:
        new = [c for c in caches if c.token not in targets]
        if new:
            targets.update(build_scene_targets(new, shifts, speeds, f_p.recovery_converge_s))
        return [targets[c.token] for c in caches]

    trainer = _trainer(planner, list(policy.parameters()), rl, "spanvla", accelerator, checkpoint_dir,
                       log_metrics)
    if ref is not None:
        ref.to(trainer.acc.device)
    select = RLSelection(planner, policy, scenes, rl, RL_MODE["spanvla"], reward_fn, log_metrics)
    scenes = select.train_scenes  # without the held-out logs (all scenes when validation is off)

    def loss_fn(item: tuple[PlannerBatch, list[MetricCache]], g: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        batch, caches = item
        with torch.no_grad():
            kv = planner.ar.encode_prompt(batch).kv
        ro = rollout_flow(policy, ref, kv, batch, caches, scene_targets(caches), reward_fn, f_p,  # type: ignore[arg-type]
                          planner.params.flow_steps, g)
        loss, logs = grpo_flow_loss(policy, ro, f_p)
        logs["loss"] = float(loss.detach())
        return loss, logs

    select.start(trainer)
    result = select.finish(trainer.fit(_scene_batches(scenes, trainer), loss_fn, select.on_step))
    result.history.append({"negatives_found": float(sum(t.negative is not None for t in targets.values())),
                           "scenes_mined": float(len(targets))})
    return result


def train_rl(planner: Planner, variant: str, scenes: Scenes, rl: RLParams, reward_fn: RewardFn,
             **kwargs: Any) -> TrainResult:
    if variant != planner.family:
        raise ValueError(f"RL variant '{variant}' given a {planner.family} planner")
    if isinstance(planner, DriveFinePlanner):
        return train_rl_drivefine(planner, scenes, rl, reward_fn, **kwargs)
    if isinstance(planner, SpanVLAPlanner):
        return train_rl_spanvla(planner, scenes, rl, reward_fn, **kwargs)
    raise ValueError(f"no RL for the {planner.family} planner")
