"""The GPU check in one go: on a CUDA machine, an SFT step of each phase and an RL step of each family at a
realistic size in bf16, decode latency of every planning mode at batch 1 and 32, and the scorer's rate;
one table, printed row by row as each is measured (a run cut short keeps its rows), nothing else to set up.

    python bench/gpu_check.py                    # needs CUDA: exits 2 without it, printing no number
    python bench/gpu_check.py --device cpu --small   # the same code path on a CPU at a tiny size (tests)
    make gpu-check

Data: random toy scenes (real MetricCaches, real scorer) with feature samples derived from them and random
images at the model's image size, so the check needs no pipeline output. Times are wall-clock medians after a
warm-up (CUDA synchronised); "peak GiB" is torch's peak allocated GPU memory in that row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the toy scenes live under tests/

import torch

# realistic: a ~0.2 B-parameter backbone on 256 x 512 images (512 patches), batches a GPU step is sized for
REALISTIC = dict(width=1024, depth=16, heads=16, n_refine_blocks=4, image_height=256, image_width=512, patch_size=16,
                 vision_width=512, vision_depth=8, vision_heads=8, flow_width=512, mdm_steps=12)
SMALL = dict(width=32, depth=2, heads=2, n_refine_blocks=1, image_height=16, image_width=32, patch_size=8,
             vision_width=16, vision_depth=1, vision_heads=2, flow_width=16, mdm_steps=4)


@dataclass
class Row:
    item: str
    setting: str
    ms: float
    rate: float
    unit: str
    peak_gib: float | None = None


class Clock:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None

    def median_ms(self, fn: Callable[[], object], reps: int) -> float:
        fn()  # warm-up: kernels, caches, allocator
        times = []
        for _ in range(reps):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)


def header(device: torch.device, p, planners) -> str:
    def millions(module: torch.nn.Module) -> float:
        return sum(q.numel() for q in module.parameters()) / 1e6

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    cuda = f", CUDA {torch.version.cuda}" if device.type == "cuda" else ""
    return (f"device: {name} (torch {torch.__version__}{cuda}); model: width {p.width}, depth {p.depth}, "
            f"image {p.image_height}x{p.image_width}; DriveFine {millions(planners['drivefine']):.1f} M params, "
            f"AR VLM {millions(planners['spanvla'].ar):.1f} M, flow expert {millions(planners['spanvla'].flow):.1f} M")


def run(args: argparse.Namespace) -> tuple[str, list[Row]]:
    import numpy as np

    from drivefine_core.features.dataset import collate_features
    from drivefine_core.models import FAMILIES, MODES, ModelParams, Planner, PlannerBatch
    from drivefine_core.models.modes import FAMILY_OF
    from drivefine_core.training.loop import make_accelerator
    from drivefine_core.training.params import OptimParams, RLParams, SFTParams
    from drivefine_core.training.reward import ScorerReward
    from drivefine_core.training.rl import train_rl
    from drivefine_core.training.sft import train_phase
    from tests.metrics.toy_random import random_candidates, random_scenes
    from tests.training.toy import sample_from_cache

    device = torch.device(args.device)
    acc = make_accelerator(cpu=device.type == "cpu")
    clock = Clock(acc.device)
    p = ModelParams(**(SMALL if args.small else REALISTIC))
    sft_batch, rl_batch, big = (4, 2, 32) if args.small else (32, 8, 32)
    scorer_scenes = 12 if args.small else 256
    reps = 2 if args.small else args.reps
    caches = random_scenes(seed=1, count=max(big, sft_batch, scorer_scenes))
    g = torch.Generator().manual_seed(0)
    samples = [sample_from_cache(c, p, g) for c in caches[: max(big, sft_batch)]]
    torch.manual_seed(0)
    planners = {f: Planner.build(f, p) for f in FAMILIES}
    rows: list[Row] = []
    head = header(acc.device, p, planners)
    print(head + "\n\n" + HEAD, flush=True)

    def add(row: Row) -> None:  # printed as measured: a run cut short still leaves its rows
        rows.append(row)
        print(line(row), flush=True)

    # training: one optimizer step per call (warm-up step first), bf16 autocast, AdamW, clipping
    opt = OptimParams(steps=1, batch_size=sft_batch, warmup_steps=0, mixed_precision=args.precision)
    sft = SFTParams(drivefine=opt, ar=opt, flow=opt, refine_start=0.0, bev_weight=0.0)
    for phase, family in (("drivefine", "drivefine"), ("ar", "spanvla"), ("flow", "spanvla")):
        clock.reset_peak()
        ms = clock.median_ms(lambda: train_phase(planners[family], phase, samples[:sft_batch], sft, accelerator=acc),
                             reps)
        add(Row(f"SFT step {phase}", f"batch {sft_batch}, {args.precision}", ms, sft_batch / ms * 1e3,
                "samples/s", clock.peak()))
    rl = RLParams(optim=OptimParams(steps=1, batch_size=rl_batch, lr=1e-4, warmup_steps=0, min_lr_ratio=1.0,
                                    mixed_precision=args.precision))
    reward = ScorerReward(rl.reward)
    scenes = list(zip(samples[:rl_batch], caches[:rl_batch]))
    for variant, group in (("drivefine", rl.grpo.group_size), ("spanvla", rl.flow.group_size)):
        clock.reset_peak()
        ms = clock.median_ms(lambda: train_rl(planners[variant], variant, scenes, rl, reward, accelerator=acc), reps)
        add(Row(f"RL step {variant}", f"{rl_batch} scenes x G {group}, {args.precision}", ms,
                rl_batch / ms * 1e3, "scenes/s", clock.peak()))

    # decoding: every planning mode at batch 1 and 32, inference mode, the same autocast
    for planner in planners.values():
        planner.eval()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    for b in (1, big):
        batch = PlannerBatch.of(collate_features(samples[:b]), acc.device)
        for mode in MODES:
            def plan(mode: str = mode) -> None:
                with torch.inference_mode(), torch.autocast(acc.device.type, dtype=dtype or torch.float32,
                                                            enabled=dtype is not None):
                    planners[FAMILY_OF[mode]].plan(batch, mode, seed=0)
            clock.reset_peak()
            ms = clock.median_ms(plan, reps)
            add(Row(f"decode {mode}", f"batch {b}", ms, b / ms * 1e3, "scenes/s", clock.peak()))

    # the scorer (CPU): one candidate per scene seen for the first time, then G = 16 per scene (RL rewards)
    rng = np.random.default_rng(0)
    fresh = random_scenes(seed=2, count=scorer_scenes)
    one = np.stack([random_candidates(rng, c, 1) for c in fresh])
    t0 = time.perf_counter()
    reward(fresh, one)
    ms = (time.perf_counter() - t0) * 1e3
    add(Row("scorer, first sight", f"{scorer_scenes} scenes x 1 candidate", ms, scorer_scenes / ms * 1e3,
            "candidates/s"))
    sixteen = np.stack([random_candidates(rng, c, 16) for c in fresh])
    ms = clock.median_ms(lambda: reward(fresh, sixteen), reps)
    add(Row("scorer, RL rewards", f"{scorer_scenes} scenes x 16 candidates", ms,
            16 * scorer_scenes / ms * 1e3, "candidates/s"))
    return head, rows


HEAD = "| item | setting | ms | rate | peak GiB |\n|---|---|---:|---:|---:|"


def line(r: Row) -> str:
    peak = f"{r.peak_gib:.2f}" if r.peak_gib is not None else "-"
    return f"| {r.item} | {r.setting} | {r.ms:.1f} | {r.rate:,.1f} {r.unit} | {peak} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default; the check) or cpu (with --small: tests)")
    ap.add_argument("--small", action="store_true", help="tiny model and batches (the code path, not the numbers)")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "no"])
    ap.add_argument("--reps", type=int, default=10, help="timed repetitions per row (the median is shown)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        print(f"gpu_check: no CUDA device here ({build}; torch {torch.__version__}), so nothing was measured. "
              "Run it on a GPU machine with a CUDA build of torch, or `--device cpu --small` to exercise the "
              "script.", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.small:
        print("gpu_check: the realistic size on a CPU would take hours; add --small", file=sys.stderr)
        return 2
    head, rows = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": head, "rows": [asdict(r) for r in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
