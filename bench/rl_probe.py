"""A controlled DriveFine RL run that watches what the updates do to the plans, from a ladder clone's SFT planner.

`--objective grpo` is the rl stage's loss (GRPO on the generation expert + behaviour cloning + refinement RL, the
clone's params); `sft` continues SFT on the logged targets (the control: what any small update does to the
greedy plans); `best-of` distils each scene's best rollout when it beats the greedy plan by 0.01 (+ the
behaviour-cloning term). One AdamW over the parameters left trainable (`--freeze`: prefixes of parameter names
held fixed), the clone's RL batch size and seed, a fixed scene order; `--warmup N` ramps the learning rate up over
N steps; `--ema D` scores an exponential moving average of the weights (decay D) instead of the weights.

Every `--every` steps, on the held-out validation logs (the scenes RL's checkpoint selection reads): the greedy
generator's PDMS (what selection and evaluation score), the sampled policy's (the rollouts' temperature, 4 draws:
what GRPO optimises), the share of scenes better / worse than at step 0, the share of greedy tokens that moved and
that moved by more than 20 bins (1 m in x / y), and for GRPO the KL to the SFT policy on the training rollouts.

    .venv/bin/python bench/rl_probe.py --data LADDER_CLONE [--objective grpo|sft|best-of] [--steps 80] \
        [--every 20] [--lr 1e-4] [--warmup 0] [--ema 0] [--freeze backbone.head backbone.prompt ...]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import functools  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

print = functools.partial(print, flush=True)  # progress shows even when piped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a ladder clone whose sft stage ran")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.0, help="0: the clone's rl.optim.lr")
    ap.add_argument("--freeze", nargs="*", default=[], help="parameter-name prefixes that RL leaves fixed")
    ap.add_argument("--objective", choices=["grpo", "sft", "best-of"], default="grpo")
    ap.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps (the ladder's RL: 0)")
    ap.add_argument("--ema", type=float, default=0.0, help="score an EMA of the weights with this decay (0: the weights)")
    ap.add_argument("--val", type=int, default=128, help="validation scenes, evenly spaced over the held-out logs")
    args = ap.parse_args()
    os.chdir(args.data)
    torch.set_num_threads(1)

    from _clone_rl import clone_rl

    from drivefine_core.models import PlannerBatch, repeat_batch
    from drivefine_core.models.planner import tokens_to_poses
    from drivefine_core.training.reward import collate_scenes
    from drivefine_core.training.rl import drivefine_rl_loss, frozen_copy

    params, scenes, held, planner, reward = clone_rl()
    rl = params.rl
    val = [held[int(i)] for i in np.linspace(0, len(held) - 1, min(args.val, len(held))).round().astype(int)]
    model = planner.drivefine
    ref = frozen_copy(model) if rl.grpo.kl_beta > 0 else None

    @torch.no_grad()
    def score(draws: int, model=model) -> tuple[np.ndarray, torch.Tensor]:
        """Per-scene reward of the greedy plan (draws 0) or mean over `draws` samples; the greedy tokens."""
        model.eval()
        g = torch.Generator().manual_seed(123)
        rewards, tokens = [], []
        for start in range(0, len(val), 32):
            samples, caches = collate_scenes(val[start : start + 32])
            batch = PlannerBatch.of(samples, "cpu")
            if draws:
                out = model.decode(repeat_batch(batch, draws), temperature=rl.grpo.temperature, generator=g)
            else:
                out = model.decode(batch, temperature=0.0)
            poses = tokens_to_poses(out.tokens).numpy().astype(np.float64).reshape(len(caches), max(draws, 1), 8, 3)
            rewards.append(reward(caches, poses).mean(axis=1))
            tokens.append(out.tokens)
        model.train()
        return np.concatenate(rewards), torch.cat(tokens)

    r0, t0 = score(0)
    print(f"step 0: greedy {100 * r0.mean():.1f}, sampled {100 * score(4)[0].mean():.1f} "
          f"({len(val)} validation scenes)")
    trainable = [p for n, p in model.named_parameters() if not any(n.startswith(f) for f in args.freeze)]
    print(f"trainable parameters: {sum(p.numel() for p in trainable):,} of {sum(p.numel() for p in model.parameters()):,}")
    opt = torch.optim.AdamW(trainable, lr=args.lr or rl.optim.lr, weight_decay=rl.optim.weight_decay,
                            betas=tuple(rl.optim.betas))
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / args.warmup) if args.warmup else 1.0)
    gen = torch.Generator().manual_seed(rl.optim.seed)
    order = np.random.default_rng(rl.optim.seed)
    averaged = copy.deepcopy(model) if args.ema > 0 else None

    def best_of_loss(batch, samples, caches):
        """SFT loss toward each scene's best of G rollouts, for the scenes where it beats the greedy plan."""
        with torch.no_grad():
            model.eval()
            greedy = reward(caches, tokens_to_poses(model.decode(batch, temperature=0.0).tokens).numpy()
                            .astype(np.float64)[:, None])[:, 0]
            drawn = model.decode(repeat_batch(batch, rl.grpo.group_size), temperature=rl.grpo.temperature,
                                 generator=gen).tokens
            rewards = reward(caches, tokens_to_poses(drawn).numpy().astype(np.float64)
                             .reshape(len(caches), rl.grpo.group_size, 8, 3))
            model.train()
        best = rewards.argmax(axis=1)
        keep = np.flatnonzero(rewards[np.arange(len(caches)), best] > greedy + 0.01)
        if not len(keep):
            return torch.zeros(())
        drawn = drawn.view(len(caches), rl.grpo.group_size, -1)
        fields = {k: (v[keep] if isinstance(v, torch.Tensor) else [v[i] for i in keep]) for k, v in samples.items()}
        fields["target_tokens"] = drawn[keep, best[keep]]
        return model.generation_loss(PlannerBatch.of(fields, "cpu"), gen) * len(keep) / len(caches)

    model.train()
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        samples, caches = collate_scenes([scenes[int(i)] for i in order.choice(len(scenes), rl.optim.batch_size, replace=False)])
        samples = dict(samples)
        batch = PlannerBatch.of(samples, "cpu")
        kl = float("nan")
        if args.objective == "grpo":
            loss, logs = drivefine_rl_loss(model, ref, batch, caches, reward, rl, gen)
            kl = logs["kl"]
        elif args.objective == "sft":
            loss = model.generation_loss(batch, gen)
        else:
            loss = rl.grpo.bc_weight * model.generation_loss(batch, gen) + best_of_loss(batch, samples, caches)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, rl.optim.max_grad_norm)
        opt.step()
        warm.step()
        if averaged is not None:
            with torch.no_grad():
                for a, w in zip(averaged.parameters(), model.parameters()):
                    a.lerp_(w, 1 - args.ema)
        if step % args.every == 0:
            scored = averaged if averaged is not None else model
            r, t = score(0, scored)
            moved = (t != t0).float().mean().item()
            far = ((t - t0).abs() > 20).float().mean().item()
            print(f"step {step}: greedy {100 * r.mean():.1f}, sampled {100 * score(4, scored)[0].mean():.1f}; scenes better "
                  f"{(r > r0 + 1e-9).mean():.2f} / worse {(r < r0 - 1e-9).mean():.2f}; tokens moved {moved:.2f}, "
                  f"> 20 bins {far:.3f}; KL {kl:.4f}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
