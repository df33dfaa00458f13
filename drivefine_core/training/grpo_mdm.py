"""DriveFine GRPO on the generation expert (masked diffusion).

Rollout: every scene is decoded G times with temperature sampling over s steps; the decode trace records
at which step each token was unmasked. Neighbouring steps are merged tau at a time (floor(s/tau) states are
kept; the remainder joins the last one): a token committed anywhere in merged step j is scored under the
state at the start of that merged step. The reward is the scorer's PDMS / EPDMS; the advantage is
A_i = r_i - mean(r) over the group (DriveFine), divided by the group's std by default (GRPOParams.normalise_std:
from-scratch models see reward spreads that differ tenfold between scenes, and a raw difference lets the
few high-spread scenes drive every update). Rollouts decode with the evaluation's step count at a low
temperature, so the sampled plans are the neighbourhood of the plan that is scored.

The action scored is the committed token: with windowed decoding that is the window mean around the sampled
bin (the plan that was rewarded), a slightly sharper policy than the raw categorical it came from.
Loss per committed token (each token is counted once, at the merged step that unmasked it):
  -min(rho * A, clip(rho, 1 - eps, 1 + eps) * A) + beta * KL_k3(pi || pi_SFT)
with rho = pi / pi_old. The optional behaviour-cloning term (the SFT loss on the logged target) is the second
anchor against reward hacking (ReCogDrive: progress alone teaches reversing at the last waypoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models import DecodeTrace, DriveFineModel, repeat_batch
from drivefine_core.models.batch import Batch, PlannerBatch
from drivefine_core.models.drivefine import GENERATE
from drivefine_core.models.planner import tokens_to_poses
from drivefine_core.training.params import GRPOParams
from drivefine_core.training.reward import RewardFn


def group_advantages(rewards: np.ndarray, normalise_std: bool = False, eps: float = 1e-6) -> np.ndarray:
    """(S, G) rewards -> (S, G) advantages r - mean (and / std when asked; zero for a constant group)."""
    adv = rewards - rewards.mean(axis=1, keepdims=True)
    if normalise_std:
        std = rewards.std(axis=1, keepdims=True)
        adv = np.where(std > eps, adv / np.maximum(std, eps), 0.0)
    return adv


@dataclass
class MDMRollout:
    batch: PlannerBatch  # the scenes repeated G times in a row (S*G samples)
    trace: DecodeTrace  # merged
    poses: np.ndarray  # (S, G, 8, 3)
    rewards: np.ndarray  # (S, G)
    advantages: Tensor  # (S*G,)
    old_logp: Tensor | None  # (S*G, n, 24); None when the rollout only feeds refinement RL
    ref_logp: Tensor | None  # (S*G, n, 24) under the frozen SFT policy; None without KL


@torch.no_grad()
def rollout_mdm(model: DriveFineModel, ref: DriveFineModel | None, batch: Batch,
                caches: Sequence[MetricCache], reward_fn: RewardFn, p: GRPOParams,
                generator: torch.Generator | None, logprobs: bool = True) -> MDMRollout:
    """G decodes of every scene and their rewards; with `logprobs`, the token log-probabilities GRPO's
    surrogate and KL need (a forward pass each: skipped when the generator is not trained)."""
    s, g = len(caches), p.group_size
    rep = repeat_batch(batch, g)
    prompt = model.backbone.encode_prompt(batch, GENERATE).repeat(g)  # once per scene, not per sample
    out = model.decode(rep, steps=p.decode_steps or model.p.mdm_steps, temperature=p.temperature,
                       generator=generator, return_trace=True, prompt=prompt)
    assert out.trace is not None
    trace = out.trace.merged(p.merge_tau)
    poses = tokens_to_poses(out.tokens).cpu().numpy().reshape(s, g, 8, 3)
    rewards = np.asarray(reward_fn(caches, poses), dtype=np.float64)
    adv = torch.as_tensor(group_advantages(rewards, p.normalise_std).reshape(-1), dtype=torch.float32,
                          device=out.tokens.device)
    old = model.trace_logprobs(rep, trace) if logprobs else None
    ref_logp = ref.trace_logprobs(rep, trace) if logprobs and ref is not None and p.kl_beta > 0 else None
    return MDMRollout(rep, trace, poses, rewards, adv, old, ref_logp)


def clipped_token_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float,
                       ref_logp: Tensor | None = None, kl_beta: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """PPO-clip surrogate + beta * k3 KL, averaged over the tokens where `mask` is True.
    logp / old_logp / ref_logp / mask: (B, n, 24); advantages (B,)."""
    a = advantages[:, None, None]
    ratio = torch.exp(logp - old_logp)
    surrogate = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    per_token = surrogate
    kl = torch.zeros((), device=logp.device)
    m = mask.float()
    denom = m.sum().clamp_min(1.0)
    if ref_logp is not None and kl_beta > 0:
        d = ref_logp - logp
        kl_tok = torch.exp(d) - d - 1  # k3: unbiased, >= 0 (Schulman)
        per_token = per_token + kl_beta * kl_tok
        kl = (kl_tok * m).sum() / denom
    loss = (per_token * m).sum() / denom
    clipped = ((ratio - 1).abs() > clip_eps).float()
    return loss, {"kl": float(kl.detach()), "clip_frac": float((clipped * m).sum() / denom)}


def grpo_mdm_loss(model: DriveFineModel, ro: MDMRollout, p: GRPOParams) -> tuple[Tensor, dict[str, float]]:
    assert ro.old_logp is not None, "rollout_mdm(..., logprobs=False) feeds refinement RL only"
    logp = model.trace_logprobs(ro.batch, ro.trace)
    loss, logs = clipped_token_loss(logp, ro.old_logp, ro.advantages, ro.trace.commit_mask(), p.clip_eps,
                                    ro.ref_logp, p.kl_beta)
    logs.update({"reward": float(ro.rewards.mean()), "reward_std": float(ro.rewards.std(axis=1).mean())})
    return loss, logs
