"""Training throughput per core at a given model size: optimizer steps/s of every SFT phase and of both RL
variants (rollouts + scorer + update), all measured in this one run, the flow phase's speed-up from caching the
frozen VLM's prompt keys/values, and the wall time a full SFT + RL run of the proposed `bench` size would take.

    python bench/training.py [--width 96] [--depth 4] [--scenes 48] [--measure-steps 4]

Data: random toy scenes (real MetricCaches, real scorer) with features derived from them and random images
at the model's image size. Times are CPU seconds of this single-threaded process (a per-core rate that a
busy shared machine does not distort).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the toy scenes live under tests/

import torch  # noqa: E402

from drivefine_core.models import FAMILIES, ModelParams, Planner  # noqa: E402
from drivefine_core.training.params import OptimParams, RLParams, SFTParams  # noqa: E402
from drivefine_core.training.prompt_cache import prompt_kv_of  # noqa: E402
from drivefine_core.training.reward import ScorerReward  # noqa: E402
from drivefine_core.training.rl import train_rl  # noqa: E402
from drivefine_core.training.sft import train_phase  # noqa: E402
from tests.metrics.toy_random import random_scenes  # noqa: E402
from tests.training.toy import sample_from_cache  # noqa: E402


def cpu_seconds(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--scenes", type=int, default=48)
    ap.add_argument("--measure-steps", type=int, default=4)
    ap.add_argument("--sft-steps", type=int, default=400, help="proposed steps per SFT phase")
    ap.add_argument("--rl-steps", type=int, default=60, help="proposed RL steps per variant")
    args = ap.parse_args()
    torch.set_num_threads(1)
    p = ModelParams(width=args.width, depth=args.depth, heads=4, vision_width=64, vision_depth=2, flow_width=48,
                    mdm_steps=8)
    caches = random_scenes(seed=1, count=args.scenes)
    g = torch.Generator().manual_seed(0)
    scenes = [(sample_from_cache(c, p, g), c) for c in caches]
    data = [s for s, _ in scenes]
    planners = {f: Planner.build(f, p) for f in FAMILIES}
    n = args.measure_steps
    sft_batch, rl_batch = 16, 4
    opt = OptimParams(steps=n, batch_size=sft_batch, warmup_steps=0)
    sft = SFTParams(drivefine=opt, ar=opt, flow=opt, train_flow_noise=True)
    rl = RLParams(optim=OptimParams(steps=n, batch_size=rl_batch, lr=1e-4, warmup_steps=0, min_lr_ratio=1.0))
    reward = ScorerReward(rl.reward)
    train_phase(planners["spanvla"], "flow", data, sft.model_copy(update={"flow": opt.model_copy(update={"steps": 1})}))  # warm-up
    per_step: dict[str, float] = {}
    for phase, family in (("drivefine", "drivefine"), ("ar", "spanvla"), ("flow", "spanvla")):
        per_step[f"sft/{phase}"] = cpu_seconds(lambda: train_phase(planners[family], phase, data, sft)) / n
    # the flow phase encoding every batch with the frozen VLM, as it does when its prompt cache does not fit
    uncached = sft.model_copy(update={"flow_prompt_cache_mb": 0})
    flow_uncached = cpu_seconds(lambda: train_phase(planners["spanvla"], "flow", data, uncached)) / n
    vlm = planners["spanvla"].ar
    cache_build = cpu_seconds(lambda: prompt_kv_of(lambda b: vlm.encode_prompt(b).kv, data, 4096, torch.device("cpu")))
    for variant in FAMILIES:
        per_step[f"rl/{variant}"] = cpu_seconds(lambda: train_rl(planners[variant], variant, scenes, rl, reward)) / n
    counts = {k: v for planner in planners.values() for k, v in planner.parameter_counts().items()}
    print(f"model: width {p.width}, depth {p.depth}, image {p.image_height}x{p.image_width}; "
          f"DriveFine {counts['drivefine.total'] / 1e6:.2f} M params, AR {counts['ar.total'] / 1e6:.2f} M, "
          f"flow expert {counts['flow.expert'] / 1e6:.2f} M")
    print(f"{'phase':<16}{'s/step':>9}{'steps/s':>9}{'samples/s':>11}")
    for name, s in per_step.items():
        batch = sft_batch if name.startswith("sft") else rl_batch
        print(f"{name:<16}{s:>9.3f}{1 / s:>9.2f}{batch / s:>11.1f}")
    cached = per_step["sft/flow"] - cache_build / n  # the phase above built its cache once, then took n steps
    print(f"flow phase: {cached:.3f} s/step reading the frozen VLM's cached prompt keys/values, {flow_uncached:.3f} "
          f"encoding every batch ({flow_uncached / cached:.2f}x); the cache of {len(data)} samples built once in "
          f"{cache_build:.2f} s, {cache_build / len(data) * 1e3:.1f} ms a sample")
    base = per_step["sft/drivefine"]
    print("cost per step relative to sft/drivefine: " +
          ", ".join(f"{k} {v / base:.2f}x" for k, v in per_step.items()))
    sft_min = sum(per_step[f"sft/{ph}"] for ph in ("drivefine", "ar", "flow")) * args.sft_steps / 60
    rl_min = sum(per_step[f"rl/{v}"] for v in ("drivefine", "spanvla")) * args.rl_steps / 60
    print(f"proposed bench run: SFT {args.sft_steps} steps/phase x batch {sft_batch} = {sft_min:.1f} CPU-min, "
          f"RL {args.rl_steps} steps/variant x {rl_batch} scenes x G {rl.grpo.group_size} = {rl_min:.1f} CPU-min; "
          f"total {sft_min + rl_min:.1f} CPU-min (one core; two threads shorten wall time by less than 2x)")


if __name__ == "__main__":
    main()
