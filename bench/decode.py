"""Decoding latency of every planning mode, for one backbone size, and the ratios the papers anchor.

Prints: latency per scene at batch 1 and 32 for each mode; flow (5 Euler steps) vs autoregressive over the
trajectory stage (the prompt pass excluded, as SpanVLA reports it) and end to end; masked diffusion with vs
without the prompt KV cache; latency against the number of MDM steps (with a linear fit); parameter counts.
Weights are random: latency does not depend on them.

    .venv/bin/python bench/decode.py [--width 128 --depth 6 --heads 4 --threads 1 --repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np
import torch

from drivefine_core.models import FAMILIES, MODES, ModelParams, Planner
from drivefine_core.models.modes import FAMILY_OF

print = functools.partial(print, flush=True)  # progress shows even when piped


def make_batch(p: ModelParams, b: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(b, 3 * p.num_views, p.image_height, p.image_width, generator=g),
        "command": torch.eye(4)[torch.randint(0, 4, (b,), generator=g)],
        "velocity": torch.rand(b, 2, generator=g) * 10,
        "acceleration": torch.randn(b, 2, generator=g),
        "history": torch.cumsum(torch.rand(b, 4, 3, generator=g), 1) - 2,
    }


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` calls after one warm-up call (the least disturbed by other load on the machine)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--refine-blocks", type=int, default=2)
    ap.add_argument("--image", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = ModelParams(width=args.width, depth=args.depth, heads=args.heads, n_refine_blocks=args.refine_blocks,
                    image_height=args.image[0], image_width=args.image[1], vision_width=args.width * 3 // 4,
                    vision_depth=2, vision_heads=args.heads // 2 or 1, flow_width=args.width // 2)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    planners = {f: Planner.build(f, p).eval().to(dev) for f in FAMILIES}
    drivefine, spanvla = planners["drivefine"].drivefine, planners["spanvla"]
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    prompt_len = drivefine.backbone.prompt.length
    print(f"device {dev}, threads {args.threads}; width {p.width}, depth {p.depth}, heads {p.heads}, "
          f"refine blocks {p.n_refine_blocks}, image {p.image_height}x{p.image_width}/{p.patch_size}, "
          f"prompt {prompt_len} tokens + 24 answer tokens; MDM steps {p.mdm_steps}, flow steps {p.flow_steps}")

    print("\nparameters per module")
    for name, n in [kv for planner in planners.values() for kv in planner.parameter_counts().items()]:
        print(f"  {name:28s} {n:>12,d}")

    def run(fn: Callable[[], object]) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                fn()
            sync()
        return call

    results: dict[tuple[str, int], float] = {}
    print("\nlatency per scene (ms)")
    print(f"  {'mode':12s} {'batch 1':>10s} {'batch ' + str(args.big_batch):>10s}")
    for mode in MODES:
        row = []
        for b in (1, args.big_batch):
            batch = {k: v.to(dev) for k, v in make_batch(p, b).items()}
            t = timed(run(lambda: planners[FAMILY_OF[mode]].plan(batch, mode, seed=0)), args.repeats) / b
            results[(mode, b)] = t
            row.append(f"{t * 1e3:10.2f}")
        print(f"  {mode:12s} {' '.join(row)}")

    print("\ntrajectory stage only (prompt pass excluded), batch 1 and batch", args.big_batch)
    for b in (1, args.big_batch):
        batch = {k: v.to(dev) for k, v in make_batch(p, b).items()}
        with torch.inference_mode():
            cache = spanvla.ar.encode_prompt(batch)
        t_prompt = timed(run(lambda: spanvla.ar.encode_prompt(batch)), args.repeats)
        t_ar = timed(run(lambda: spanvla.ar.decode(batch, cache=cache)), args.repeats)
        t_flow = timed(run(lambda: spanvla.flow.sample(batch, cache.kv, steps=5)), args.repeats)
        print(f"  batch {b:3d}: prompt pass {t_prompt * 1e3:8.2f} ms, AR 24 tokens {t_ar * 1e3:8.2f} ms, "
              f"flow 5 steps {t_flow * 1e3:8.2f} ms -> flow vs AR over the trajectory {t_ar / t_flow:6.1f}x "
              f"(target >= 5x); end to end {(t_prompt + t_ar) / (t_prompt + t_flow):5.2f}x")

    print("\nmasked diffusion with vs without the prompt KV cache (12 steps)")
    for b in (1, args.big_batch):
        batch = {k: v.to(dev) for k, v in make_batch(p, b).items()}
        t_c = timed(run(lambda: drivefine.decode(batch, use_cache=True)), args.repeats)
        t_u = timed(run(lambda: drivefine.decode(batch, use_cache=False)), args.repeats)
        print(f"  batch {b:3d}: cached {t_c * 1e3:8.2f} ms, uncached {t_u * 1e3:8.2f} ms -> {t_u / t_c:5.2f}x "
              f"(target >= 2x)")

    print("\nMDM latency against steps (cached, batch", args.big_batch, ")")
    batch = {k: v.to(dev) for k, v in make_batch(p, args.big_batch).items()}
    steps = [1, 4, 8, 12, 24]
    times = [timed(run(lambda s=s: drivefine.decode(batch, steps=s)), args.repeats) for s in steps]
    slope, intercept = np.polyfit(steps, times, 1)
    pred = np.polyval([slope, intercept], steps)
    r2 = 1 - np.sum((np.array(times) - pred) ** 2) / np.sum((np.array(times) - np.mean(times)) ** 2)
    for s, t in zip(steps, times):
        print(f"  steps {s:2d}: {t * 1e3:8.2f} ms")
    print(f"  linear fit: {slope * 1e3:.2f} ms/step + {intercept * 1e3:.2f} ms (prompt pass), R^2 = {r2:.4f}")


if __name__ == "__main__":
    main()
