"""Benchmark the synthetic world generator: 20 logs x 200 frames with front-camera images.

Prints wall time, CPU time (this process + worker processes) and frames/s, for 1 worker and for N
workers, in one run. On a shared machine wall time depends on the load; CPU time does not.
Usage: python bench/generate.py [--logs 20] [--frames 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.world import generate_world


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run(logs: int, frames: int, workers: int) -> tuple[float, float, int]:
    params = GenerateParams(num_logs=logs, frames_per_log=frames, workers=workers)
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), _cpu()
        summary = generate_world(Path(tmp), params, progress=lambda done, total: None)
        return time.perf_counter() - wall, _cpu() - cpu, summary.frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=20)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    results = {}
    for workers in sorted({1, args.workers}):
        wall, cpu, frames = run(args.logs, args.frames, workers)
        results[workers] = wall
        print(f"workers={workers}: {frames} frames in {wall:.1f} s wall ({frames / wall:.0f} frames/s), "
              f"CPU {cpu:.1f} s ({frames / cpu:.0f} frames per CPU-second)")
    if len(results) > 1:
        print(f"speed-up with {args.workers} workers: {results[1] / results[args.workers]:.2f}x")


if __name__ == "__main__":
    main()
