"""The KL anchor's trade-off on SpanVLA's flow GRPO, measured in this one run on hand-made toy scenes with
a tiny planner: for each kl_beta, (a) how far a progress-only reward that pays for reversing at the last
waypoint drags the plan (metres of reversal gained; the ReCogDrive failure), and (b) how much the sampled
policy's PDMS rises under the real scorer, after the same number of GRPO steps.

    python bench/rl_anchor.py [--steps 40] [--betas 0 0.5 1 2 5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import copy  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the toy scenes live under tests/

import numpy as np  # noqa: E402
import torch  # noqa: E402

from drivefine_core.models import ModelParams, Planner, PlannerBatch  # noqa: E402
from drivefine_core.training.params import FlowGRPOParams, OptimParams, RLParams, SFTParams  # noqa: E402
from drivefine_core.training.reward import ScorerReward, collate_scenes  # noqa: E402
from drivefine_core.training.rl import sampled_reward, train_rl  # noqa: E402
from drivefine_core.training.sft import train_sft  # noqa: E402
from tests.metrics import toy_scenes as T  # noqa: E402
from tests.training.toy import sample_from_cache  # noqa: E402


def reversal_reward(caches, trajectories: np.ndarray) -> np.ndarray:
    x6, x7 = trajectories[..., 6, 0], trajectories[..., 7, 0]
    return (x6 + (x6 - x7)) / 10.0


def reversal(planner: Planner, scenes) -> float:
    samples, _ = collate_scenes(scenes)
    poses = planner.plan(PlannerBatch.of(samples), "flow").poses.numpy()
    return float((poses[:, 6, 0] - poses[:, 7, 0]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 5.0])
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    p = ModelParams(width=32, depth=3, heads=2, mlp_ratio=2.0, image_height=16, image_width=16, patch_size=8,
                    vision_width=16, vision_depth=1, vision_heads=2, flow_width=16)
    caches = [T.straight_road(ego_speed=6.0, token="s6"), T.straight_road(ego_speed=10.0, token="s10"),
              T.straight_road([T.ToyAgent(40.0, 0.0)], ego_speed=8.0, token="lead"),
              T.curved_road(ego_speed=8.0, token="curve"),
              T.intersection(ego_speed=8.0, red_from_step=None, token="green"),
              T.intersection(ego_speed=8.0, red_from_step=0, token="red")]
    scenes = [(sample_from_cache(c, p, torch.Generator().manual_seed(i)), c) for i, c in enumerate(caches)]
    planner = Planner.build("spanvla", p)
    fast = OptimParams(steps=15, batch_size=6, lr=1e-2, warmup_steps=2)
    train_sft(planner, "spanvla", [s for s, _ in scenes],
              SFTParams(ar=fast, flow=fast.model_copy(update={"lr": 3e-3}), train_flow_noise=False))
    start, reward = reversal(planner, scenes), ScorerReward("v1/pdms")
    print(f"{'kl_beta':>8}{'reversal gain (m)':>19}{'PDMS sampled before':>21}{'after':>8}")
    for beta in args.betas:
        rl = RLParams(optim=OptimParams(steps=args.steps, batch_size=6, lr=1e-3, warmup_steps=0, min_lr_ratio=1.0),
                      flow=FlowGRPOParams(group_size=8, kl_beta=beta, w_negative=0.0, w_recovery=0.0))
        hacked = copy.deepcopy(planner)
        train_rl(hacked, "spanvla", scenes, rl, reversal_reward)
        tuned = copy.deepcopy(planner)
        before = sampled_reward(tuned, scenes, "spanvla", rl, reward, samples=8, seed=11)
        train_rl(tuned, "spanvla", scenes, rl, reward)
        after = sampled_reward(tuned, scenes, "spanvla", rl, reward, samples=8, seed=11)
        print(f"{beta:>8.2f}{reversal(hacked, scenes) - start:>19.2f}{before:>21.3f}{after:>8.3f}")


if __name__ == "__main__":
    main()
