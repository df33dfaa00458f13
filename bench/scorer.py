"""Scoring throughput per core: one-candidate evaluation (scenes/s) and batched RL rewards (candidates/s,
G = 16 per scene), fast engine vs the plain reference scorer, all measured in this one run.

    python bench/scorer.py [--scenes 200] [--plain-scenes 8]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from drivefine_core.metrics.reference_scorer import reference_score  # noqa: E402
from drivefine_core.metrics.scorer import score_trajectories  # noqa: E402
from drivefine_core.metrics.toy_random import random_candidates, random_scenes  # noqa: E402


def _timed(fn) -> float:
    """CPU seconds of this (single-threaded) process: a per-core rate even on a busy machine."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--group", type=int, default=16)
    ap.add_argument("--plain-scenes", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    caches = random_scenes(seed=1, count=args.scenes)
    one = np.stack([random_candidates(rng, c, 1) for c in caches])
    group = np.stack([random_candidates(rng, c, args.group) for c in caches])

    cold = _timed(lambda: score_trajectories(caches, one, "both"))  # includes building the per-scene indexes
    warm = {v: _timed(lambda v=v: score_trajectories(caches, one, v)) for v in ("both", "v1", "v2")}
    rl = {v: _timed(lambda v=v: score_trajectories(caches, group, v, extended_comfort_pairs=False)) for v in ("v1", "v2")}

    plain_caches = random_scenes(seed=1, count=args.plain_scenes)
    plain = _timed(lambda: [reference_score(c, one[i, 0], v) for i, c in enumerate(plain_caches) for v in ("v1", "v2")])
    plain_rate = args.plain_scenes / plain

    s = args.scenes
    print(f"scenes: {s} toy scenes (straight / curve / intersection, 0-8 agents), 1 thread, CPU time")
    print(f"one-candidate evaluation, v1+v2, cold (index build included): {s / cold:8.1f} scenes/s")
    print(f"one-candidate evaluation, v1+v2, warm:                        {s / warm['both']:8.1f} scenes/s")
    print(f"one-candidate evaluation, v1 only / v2 only, warm:            {s / warm['v1']:8.1f} / {s / warm['v2']:.1f} scenes/s")
    for v in ("v1", "v2"):
        print(f"RL rewards G={args.group}, {v}, warm:                              {s * args.group / rl[v]:8.1f} candidates/s")
    print(f"plain reference scorer, v1+v2:                                {plain_rate:8.2f} scenes/s")
    print(f"ratio fast/plain, one-candidate v1+v2: cold {s / cold / plain_rate:.0f}x, warm {s / warm['both'] / plain_rate:.0f}x")
    print(f"ratio fast/plain per candidate, RL G={args.group} v2: {s * args.group / rl['v2'] / plain_rate:.0f}x")


if __name__ == "__main__":
    main()
