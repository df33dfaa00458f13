"""Training on 2 processes against 1, in one run: the same global batch (1 process x grad_accum 2 against
2 processes x grad_accum 1, DDP over gloo on CPUs or NCCL on GPUs), started the way the sft / rl stages start
(drivefine_core.training.launch: accelerate launch). Prints the largest weight difference (the equality) and
the time of each, training alone and with process start-up.

    python bench/train_scale.py [--width 96] [--depth 4] [--sft-steps 4] [--rl-steps 2] [--threads 1]

Data: random toy scenes (real MetricCaches, real scorer) with features derived from them. Every process of
both runs uses --threads threads: the speed-up is then that of the processes (a CPU kernel with another
thread count also sums in another order, and AdamW turns such last-bit differences of near-zero gradients
into visible weight differences).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# float tolerance: the runs sum gradients in another order (micro-steps against an all-reduce)
ATOL, RTOL = 1e-5, 1e-4



sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the toy scenes live under tests/

def worker(args: argparse.Namespace) -> None:
    """One process of a launched run: SFT (every phase) then RL (both families), timed; the main process
    saves the weights and the timings."""
    import torch

    from drivefine_core.models import FAMILIES, ModelParams, Planner
    from drivefine_core.training.loop import make_accelerator
    from drivefine_core.training.params import OptimParams, RLParams, SFTParams
    from drivefine_core.training.reward import ScorerReward
    from drivefine_core.training.rl import train_rl
    from drivefine_core.training.sft import train_sft
    from tests.metrics.toy_random import random_scenes
    from tests.training.toy import sample_from_cache

    acc = make_accelerator()
    p = ModelParams(width=args.width, depth=args.depth, heads=4, vision_width=64, vision_depth=2, flow_width=48,
                    mdm_steps=8)
    caches = random_scenes(seed=1, count=args.scenes)
    g = torch.Generator().manual_seed(0)
    scenes = [(sample_from_cache(c, p, g), c) for c in caches]
    torch.manual_seed(0)
    planners = {f: Planner.build(f, p) for f in FAMILIES}
    opt = OptimParams(steps=args.sft_steps, batch_size=4, grad_accum=args.grad_accum, warmup_steps=0)
    sft = SFTParams(drivefine=opt, ar=opt, flow=opt, refine_start=0.5)
    rl = RLParams(optim=OptimParams(steps=args.rl_steps, batch_size=2, grad_accum=args.grad_accum, lr=1e-4,
                                    warmup_steps=0, min_lr_ratio=1.0))
    seconds = 0.0
    for variant in FAMILIES:
        seconds += sum(r.seconds for r in train_sft(planners[variant], variant, [s for s, _ in scenes], sft,
                                                    accelerator=acc).values())
    for variant in FAMILIES:
        seconds += train_rl(planners[variant], variant, scenes, rl, ScorerReward(rl.reward), accelerator=acc).seconds
    if acc.is_main_process:
        out = Path(args.out)
        torch.save({f"{f}.{k}": v.detach().cpu() for f, planner in planners.items()
                    for k, v in planner.state_dict().items()}, out / "weights.pt")
        (out / "timing.json").write_text(json.dumps({"train_s": seconds, "processes": acc.num_processes}))


def launched_run(args: argparse.Namespace, processes: int, grad_accum: int, out: Path) -> dict[str, float]:
    from drivefine_core.training.launch import launch
    from drivefine_core.training.params import LaunchParams

    out.mkdir(parents=True, exist_ok=True)
    script = ["worker", "--grad-accum", str(grad_accum), "--out", str(out), "--width", str(args.width),
              "--depth", str(args.depth), "--scenes", str(args.scenes), "--sft-steps", str(args.sft_steps),
              "--rl-steps", str(args.rl_steps)]
    t0 = time.perf_counter()
    code = launch(LaunchParams(processes=processes, threads_per_process=args.threads), "bench.train_scale",
                  tuple(script))
    wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"the {processes}-process run failed with exit code {code}")
    timing = json.loads((out / "timing.json").read_text())
    return {"wall_s": wall, **timing}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="compare", choices=["compare", "worker"])
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--scenes", type=int, default=32)
    ap.add_argument("--sft-steps", type=int, default=4)
    ap.add_argument("--rl-steps", type=int, default=2)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of every process")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.mode == "worker":
        worker(args)
        return
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        one = launched_run(args, 1, 2, Path(tmp) / "one")
        two = launched_run(args, 2, 1, Path(tmp) / "two")
        a = torch.load(Path(tmp) / "one" / "weights.pt")
        b = torch.load(Path(tmp) / "two" / "weights.pt")
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    excess = max(float(((a[k].float() - b[k].float()).abs() - RTOL * b[k].float().abs()).max()) for k in a)
    print(f"model width {args.width}, depth {args.depth}; SFT {args.sft_steps} steps x 3 phases, RL {args.rl_steps} "
          f"steps x 2 families; global batch 8 (SFT) / 4 (RL) scenes; {args.threads} thread(s) per process, "
          f"{os.cpu_count()} CPUs")
    print(f"{'run':<28}{'train s':>9}{'wall s':>9}")
    print(f"{'1 process x grad_accum 2':<28}{one['train_s']:>9.1f}{one['wall_s']:>9.1f}")
    print(f"{'2 processes x grad_accum 1':<28}{two['train_s']:>9.1f}{two['wall_s']:>9.1f}")
    print(f"speed-up 1 -> 2 processes: training {one['train_s'] / two['train_s']:.2f}x, "
          f"with start-up {one['wall_s'] / two['wall_s']:.2f}x")
    equal = excess <= ATOL
    print(f"2-process training equality: largest weight difference {worst:.2e} "
          f"({'equal' if equal else 'NOT equal'} within atol {ATOL:g} + rtol {RTOL:g})")
    if not equal:
        sys.exit(1)

if __name__ == "__main__":
    main()
