"""How much of DriveFine's GRPO gradient is signal: the agreement of policy gradients from independent batches.

From a ladder clone's SFT DriveFine planner, N batches of train scenes (the validation logs left out) are rolled
out as RL does (group size, temperature, merged steps from the clone's params) and each batch's GRPO gradient
(no KL, no behaviour cloning: the reward term alone) is taken per module group. A gradient that carries a
direction which generalises across scenes agrees between batches: the mean cosine of two batches' gradients,
and of the means of the two halves of the batches, is above zero. The same with each group's rewards shuffled
among its samples (same magnitudes, no information) is the floor: what agrees then is not the reward's doing.

    .venv/bin/python bench/rl_signal.py --data LADDER_CLONE [--batches 12] [--scenes 6] [--seed 1]

LADDER_CLONE is a clone whose sft stage ran with bench/ladder_params.yaml (bench/ladder.py --dest leaves one).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

print = functools.partial(print, flush=True)  # progress shows even when piped
GROUPS = {"all": "", "vision + prompt": "backbone.prompt", "shared blocks": "backbone.shared",
          "generation expert": "backbone.experts.generate", "LM head": "backbone.head"}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-12))


def agreement(grads: list[dict[str, torch.Tensor]], prefix: str) -> tuple[float, float, float, float]:
    """-> (mean pairwise cosine of single batches, its standard error, cosine of the two halves' means,
    mean gradient norm of a single batch) over the parameters whose names start with `prefix`. The halves
    average unit-length gradients, so that one batch with a large reward spread does not stand for its half."""
    g = torch.stack([torch.cat([v for n, v in d.items() if n.startswith(prefix)]) for d in grads])
    k, norm = len(g), g.norm(dim=1)
    unit = g / norm.clamp_min(1e-12)[:, None]
    pairs = np.array([cosine(g[i], g[j]) for i in range(k) for j in range(i + 1, k)])
    return (float(pairs.mean()), float(pairs.std() / np.sqrt(len(pairs))),
            cosine(unit[: k // 2].mean(0), unit[k // 2 :].mean(0)), float(norm.mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a ladder clone whose sft stage ran")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--scenes", type=int, default=0, help="scenes per batch (0: the clone's rl.optim.batch_size)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.chdir(args.data)
    torch.set_num_threads(1)

    from _clone_rl import clone_rl

    from drivefine_core.models import PlannerBatch
    from drivefine_core.training.grpo_mdm import group_advantages, grpo_mdm_loss, rollout_mdm
    from drivefine_core.training.reward import collate_scenes

    params, scenes, _, planner, reward = clone_rl()
    rl = params.rl
    grpo = rl.grpo.model_copy(update={"kl_beta": 0.0})
    model = planner.drivefine.train()
    size = args.scenes or rl.optim.batch_size
    rng, shuffle = np.random.default_rng(args.seed), np.random.default_rng(args.seed + 1)
    gen = torch.Generator().manual_seed(args.seed)
    grads: dict[str, list[dict[str, torch.Tensor]]] = {"rewards": [], "shuffled": []}
    spread = []
    for k in range(args.batches):
        samples, caches = collate_scenes([scenes[int(i)] for i in rng.choice(len(scenes), size, replace=False)])
        ro = rollout_mdm(model, None, PlannerBatch.of(samples, "cpu"), caches, reward, grpo, gen)
        spread.append(ro.rewards.std(axis=1).mean())
        for kind, r in (("rewards", ro.rewards), ("shuffled", np.stack([shuffle.permutation(x) for x in ro.rewards]))):
            ro.advantages = torch.as_tensor(group_advantages(r, grpo.normalise_std).reshape(-1), dtype=torch.float32)
            loss, _ = grpo_mdm_loss(model, ro, grpo)
            model.zero_grad()
            loss.backward()
            grads[kind].append({n: p.grad.flatten().clone() for n, p in model.named_parameters() if p.grad is not None})
        print(f"batch {k + 1}/{args.batches}: mean reward {ro.rewards.mean():.3f}, in-group std {spread[-1]:.3f}")
    print(f"\nDriveFine GRPO gradient agreement: {args.batches} batches of {size} scenes x G={grpo.group_size}, "
          f"temperature {grpo.temperature}, in-group reward std {np.mean(spread):.3f}")
    print("| parameters | cos, 2 batches (rewards) | cos, halves (rewards) | cos, 2 batches (shuffled) | "
          "cos, halves (shuffled) | gradient norm |")
    print("|---|---|---|---|---|---|")
    for name, prefix in GROUPS.items():
        m, se, h, norm = agreement(grads["rewards"], prefix)
        ms, ses, hs, _ = agreement(grads["shuffled"], prefix)
        print(f"| {name} | {m:.3f} +- {se:.3f} | {h:.3f} | {ms:.3f} +- {ses:.3f} | {hs:.3f} | {norm:.3f} |")


if __name__ == "__main__":
    main()
