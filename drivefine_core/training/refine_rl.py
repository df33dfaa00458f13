"""DriveFine refinement-expert RL, from the G drafts of a GRPO rollout.

- Offline pairs: refine draft j towards draft i with A_ij = r_i - r_j (a worse draft is pulled towards a
  better one, a better one pushed away from a worse one). Up to `max_pairs` ordered pairs per scene with
  A_ij != 0, sampled with the step's generator.
- Online: K refinements of each draft sampled from the refinement expert (temperature), scored;
  A_ik = r_hat_ik - r_i.
Loss: -rho * A per token with rho = pi / pi_old and no clipping; one update per rollout, so rho = 1 in value
(pi_old is the detached current policy) and its gradient is A * grad log pi. Averaged over tokens and samples
of both parts (the paper sums; a mean only rescales the learning rate).
The refinement path runs on the detached shared trunk, so this loss updates only the refinement blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models import DriveFineModel
from drivefine_core.models.batch import Batch
from drivefine_core.models.planner import tokens_to_poses
from drivefine_core.training.params import RefineRLParams
from drivefine_core.training.reward import RewardFn


def _policy_term(model: DriveFineModel, batch: Batch, rows: Tensor, draft: Tensor, refined: Tensor,
                 adv: Tensor, temperature: float) -> Tensor:
    logp = model.refine_logprobs(batch, draft, refined, temperature, rows)
    rho = torch.exp(logp - logp.detach())
    return -(rho * adv[:, None]).mean()


def offline_pairs(rewards: np.ndarray, max_pairs: int, generator: torch.Generator | None) -> list[tuple[int, int, int]]:
    """(scene, i, j) with r_i != r_j, at most max_pairs per scene, drawn without replacement."""
    out: list[tuple[int, int, int]] = []
    s, g = rewards.shape
    for k in range(s):
        cand = [(i, j) for i in range(g) for j in range(g) if i != j and rewards[k, i] != rewards[k, j]]
        if not cand or max_pairs == 0:
            continue
        dev = generator.device if generator is not None else None
        order = torch.randperm(len(cand), generator=generator, device=dev).tolist()[:max_pairs]
        out.extend((k, *cand[o]) for o in order)
    return out


def refine_rl_loss(model: DriveFineModel, batch: Batch, caches: Sequence[MetricCache],
                   drafts: Tensor, rewards: np.ndarray, reward_fn: RewardFn, p: RefineRLParams,
                   generator: torch.Generator | None) -> tuple[Tensor, dict[str, float]]:
    """batch: S scenes (not repeated); drafts (S*G, 24) in scene-major order; rewards (S, G)."""
    s, g = rewards.shape
    dev = drafts.device
    terms: list[Tensor] = []
    logs: dict[str, float] = {}
    pairs = offline_pairs(rewards, p.max_pairs, generator)
    if pairs:
        idx = torch.tensor(pairs, device=dev)
        scene, better, worse = idx[:, 0], idx[:, 0] * g + idx[:, 1], idx[:, 0] * g + idx[:, 2]
        adv = torch.as_tensor(rewards[idx[:, 0].cpu(), idx[:, 1].cpu()] - rewards[idx[:, 0].cpu(), idx[:, 2].cpu()],
                              dtype=torch.float32, device=dev)
        terms.append(_policy_term(model, batch, scene, drafts[worse], drafts[better], adv, p.temperature))
        logs["offline_pairs"] = float(len(pairs))
    if p.online_k > 0:
        k = p.online_k
        rep_idx = torch.arange(s * g, device=dev).repeat_interleave(k)  # draft index of every refinement
        rows = rep_idx // g  # each refinement's scene: the prompts are encoded once per scene
        with torch.no_grad():
            refined, _ = model.refine(batch, drafts[rep_idx], temperature=p.temperature, generator=generator,
                                      rows=rows)
        r_hat = np.asarray(reward_fn(caches, tokens_to_poses(refined).cpu().numpy().reshape(s, g * k, 8, 3)))
        adv_np = r_hat.reshape(s * g * k) - rewards.reshape(-1)[rep_idx.cpu().numpy()]
        adv = torch.as_tensor(adv_np, dtype=torch.float32, device=dev)
        terms.append(_policy_term(model, batch, rows, drafts[rep_idx], refined, adv, p.temperature))
        logs["online_reward"] = float(r_hat.mean())
        logs["online_gain"] = float(adv_np.mean())
    if not terms:
        return torch.zeros((), device=dev, requires_grad=True), logs
    return sum(terms) / len(terms), logs  # type: ignore[return-value]
