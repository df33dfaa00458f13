"""SpanVLA GRPO on the flow-matching action expert, with negative and recovery rewards.

The policy. The deterministic Euler sampler has no likelihood, so the RL policy is a Gaussian chain around
the Euler path (as Flow-GRPO turns the flow ODE into an SDE): from a0 = a_his (+ optional initial noise),
  a_{i+1} = a_i + f(a_i, i/N, c) / N + sigma * eps_i,   eps_i ~ N(0, I),   i = 0..N-1,
in normalised action units. The chain's log-probability is the sum of the per-step Gaussian densities, which
exist and are differentiable in the expert's weights; the initial noise does not depend on the weights and
adds a constant, so it only widens exploration. The KL to the frozen SFT expert is exact per step for two
Gaussians of equal sigma: ||mu - mu_ref||^2 / (2 sigma^2).
The VLM (AR backbone) stays frozen: the expert reads its detached keys/values (the paper adapts it with LoRA).

Reward r = r_driving - w_N * c(traj, negative) + w_R * c(traj, recovery) (negatives.py); advantage
(r - mean) / std over the group; one update per rollout, so the ratio is 1 in value and no clipping is needed.
Surrogate and KL are averaged per dimension (steps x 24 numbers): a fixed scale that keeps the learning
rate independent of the number of Euler steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models import FlowPolicy, history_extrapolation
from drivefine_core.models.batch import Batch
from drivefine_core.models.layers import KV
from drivefine_core.training.grpo_mdm import group_advantages
from drivefine_core.training.negatives import SceneTargets, shaped_reward
from drivefine_core.training.params import FlowGRPOParams
from drivefine_core.training.reward import RewardFn


def _repeat_kv(kv: list[KV], n: int) -> list[KV]:
    return [(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in kv]


def step_means(policy: FlowPolicy, states: Tensor, kv: list[KV], state: Tensor | None) -> Tensor:
    """(B, N, 8, 3) chain states a_0..a_{N-1} -> (B, N, 8, 3) Euler means a_i + f(a_i, i/N) / N, all steps in
    one batched pass. state: the (B, STATE_DIM) ego state (FlowPolicy.state_of) or None."""
    b, n = states.shape[:2]
    tau = (torch.arange(n, device=states.device, dtype=states.dtype) / n).repeat(b)
    rep_state = state.repeat_interleave(n, 0) if state is not None else None
    f = policy.expert(states.flatten(0, 1), tau, _repeat_kv(kv, n), rep_state).view_as(states)
    return states + f / n


@torch.no_grad()
def sample_chain(policy: FlowPolicy, batch: Batch, kv: list[KV], steps: int, step_noise: float,
                 init_noise: float, generator: torch.Generator | None) -> Tensor:
    """(B, N + 1, 8, 3) normalised states of the stochastic Euler chain from the batch's history."""
    state = policy.state_of(batch)
    a = policy.normalise(history_extrapolation(batch["history"].float()))
    if init_noise > 0:
        a = a + init_noise * torch.randn(a.shape, device=a.device, generator=generator)
    chain = [a]
    for i in range(steps):
        tau = torch.full((a.shape[0],), i / steps, device=a.device)
        a = a + policy.expert(a, tau, kv, state) / steps + step_noise * torch.randn(a.shape, device=a.device,
                                                                            generator=generator)
        chain.append(a)
    return torch.stack(chain, 1)


def gaussian_logp(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    """Per-element log N(x; mean, sigma^2)."""
    return -((x - mean) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)


@dataclass
class FlowRollout:
    kv: list[KV]  # detached VLM keys/values, per repeated sample
    state: Tensor | None  # (S*G, STATE_DIM) ego state of the expert's state token, per repeated sample
    chain: Tensor  # (S*G, N + 1, 8, 3)
    poses: np.ndarray  # (S, G, 8, 3)
    rewards: np.ndarray  # (S, G) shaped reward
    advantages: Tensor  # (S*G,)
    old_logp: Tensor  # (S*G,) mean per-dimension chain log-prob
    ref_means: Tensor | None  # (S*G, N, 8, 3) under the SFT expert
    logs: dict[str, float]


@torch.no_grad()
def rollout_flow(policy: FlowPolicy, ref: FlowPolicy | None, kv: list[KV], batch: Batch,
                 caches: Sequence[MetricCache], targets: Sequence[SceneTargets], reward_fn: RewardFn,
                 p: FlowGRPOParams, steps: int, generator: torch.Generator | None) -> FlowRollout:
    """kv: the VLM prompt keys/values of the S scenes (not repeated)."""
    s, g = len(caches), p.group_size
    rep_kv = _repeat_kv(kv, g)
    # the fields the chain reads, each sample repeated g times in a row (as repeat_batch orders a group)
    rep = {k: batch[k].repeat_interleave(g, dim=0) for k in ("history", "velocity", "acceleration", "command")}
    chain = sample_chain(policy, rep, rep_kv, steps, p.step_noise, p.init_noise, generator)
    state = policy.state_of(rep)
    poses = policy.denormalise(chain[:, -1]).cpu().numpy().reshape(s, g, 8, 3)
    driving = np.asarray(reward_fn(caches, poses), dtype=np.float64)
    rewards, logs = shaped_reward(driving, poses, targets, p.w_negative, p.w_recovery, p.closeness_sigma_m)
    adv = torch.as_tensor(group_advantages(rewards, normalise_std=True).reshape(-1), dtype=torch.float32,
                          device=chain.device)
    means = step_means(policy, chain[:, :-1], rep_kv, state)
    old = gaussian_logp(chain[:, 1:], means, p.step_noise).flatten(1).mean(1)
    ref_means = step_means(ref, chain[:, :-1], rep_kv, state) if ref is not None and p.kl_beta > 0 else None
    logs["reward"] = float(rewards.mean())
    return FlowRollout(rep_kv, state, chain, poses, rewards, adv, old, ref_means, logs)


def grpo_flow_loss(policy: FlowPolicy, ro: FlowRollout, p: FlowGRPOParams) -> tuple[Tensor, dict[str, float]]:
    means = step_means(policy, ro.chain[:, :-1], ro.kv, ro.state)
    logp = gaussian_logp(ro.chain[:, 1:], means, p.step_noise).flatten(1).mean(1)
    rho = torch.exp(logp - ro.old_logp)
    loss = -(rho * ro.advantages).mean()
    logs = dict(ro.logs)
    if ro.ref_means is not None:
        kl = (((means - ro.ref_means) ** 2) / (2 * p.step_noise**2)).flatten(1).mean(1).mean()
        loss = loss + p.kl_beta * kl
        logs["kl"] = float(kl.detach())
    return loss, logs
