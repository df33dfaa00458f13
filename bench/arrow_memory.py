"""Reading a split's metric caches under each Arrow allocator, all measured in this one run, on the synthetic
world's train split (every frame a scene, caches built by the metric_cache stage's code), as the stages read
them: the rl and evaluate stages with the scorer's precomputed tables, the sft stage (BEV targets) and the
ego-MLP's fit without them (`scorer_tables=False`).

Each reading runs in a fresh interpreter (the pool is process-wide, and a process's first large allocations
are what differs), three times in turn; the median wall time (with its ratio to pyarrow's default, mimalloc
on Linux), the minor page faults and the kernel CPU time of the reading are printed. The stages use `use_fast_arrow_pool()`
(drivefine_core/storage/arrow_memory.py).

    python bench/arrow_memory.py [--logs 12] [--frames 200] [--repeats 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = (("mimalloc", True), ("jemalloc", True), ("system", True), ("mimalloc", False), ("jemalloc", False))


def child(pool: str, tables: bool, cache_dir: str) -> None:
    """One reading in this interpreter; prints a JSON line."""
    import resource

    import pyarrow as pa

    pa.set_memory_pool({"mimalloc": pa.mimalloc_memory_pool, "jemalloc": pa.jemalloc_memory_pool,
                        "system": pa.system_memory_pool}[pool]())
    from drivefine_core.metrics.cache_io import read_metric_caches

    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    caches = read_metric_caches(cache_dir, scorer_tables=tables)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "faults": after.ru_minflt - before.ru_minflt,
                      "sys_s": after.ru_stime - before.ru_stime, "scenes": len(caches)}))


def run_case(pool: str, tables: bool, cache_dir: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", pool, str(int(tables)), str(cache_dir)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise SystemExit(f"reading with {pool} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=12, help="logs in the synthetic world (most are train logs)")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1", args.child[2])
        return
    sys.path.insert(0, str(ROOT))
    from _world import synthetic_caches

    with tempfile.TemporaryDirectory(prefix="bench-arrow-") as tmp:
        t0 = time.perf_counter()
        cache_dir = synthetic_caches(Path(tmp), args.logs, args.frames, split="train")
        files = sorted(cache_dir.glob("*.parquet"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"synthetic world, train split: {len(files)} logs x {args.frames} frames, {mb:.0f} MB of metric "
              f"cache files (built in {time.perf_counter() - t0:.0f} s); {args.repeats} readings per case, in turn")
        runs: dict[tuple[str, bool], list[dict[str, float]]] = {c: [] for c in CASES}
        for _ in range(args.repeats):
            for case in CASES:
                runs[case].append(run_case(*case, cache_dir))
    base = statistics.median(r["seconds"] for r in runs[("mimalloc", True)])
    print(f"{'pool':9s} {'scorer tables':13s} {'scenes':>6s} {'seconds':>8s} {'vs mimalloc':>11s} "
          f"{'minor faults':>12s} {'kernel s':>8s}")
    for (pool, tables), rs in runs.items():
        s = statistics.median(r["seconds"] for r in rs)
        print(f"{pool:9s} {'read' if tables else 'left out':13s} {int(rs[0]['scenes']):6d} {s:8.2f} "
              f"{base / s:10.1f}x {statistics.median(r['faults'] for r in rs):12,.0f} "
              f"{statistics.median(r['sys_s'] for r in rs):8.2f}")


if __name__ == "__main__":
    main()
