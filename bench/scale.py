"""The data stages' speed-up from 1 to 2 workers on the synthetic world (target >= 1.6x on 2 cores).

Runs generate, ingest (with the Great Expectations checks), features, metric_cache and the evaluate stage's
scoring (baselines) on the params.yaml world, once with 1 worker and once with N, on one executor backend:
the local process pool (the laptop default) or a Ray cluster started here with 1 and then N CPUs
(`--backend ray`). Prints each stage's wall time, the speed-ups, and the load average before and after,
so a run on a shared machine says so. Outputs of the two runs are compared byte for byte (GeoPackages
by content: GDAL stamps them with the time of writing).
Usage: python bench/scale.py [--logs 8] [--frames 60] [--workers 2] [--backend pool|ray]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path

from drivefine_core.config import load_params
from drivefine_core.data.ingest import ingest
from drivefine_core.data.scenes_io import read_scene_index, read_scenes
from drivefine_core.data.synthetic.world import generate_world
from drivefine_core.executor.core import Executor, make_executor
from drivefine_core.executor.params import ExecutorParams
from drivefine_core.features.from_scenes import build_features_from_scenes_file
from drivefine_core.metrics.baselines import constant_velocity_agent, human_agent
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.metrics.cache_stage import build_metric_cache_dir
from drivefine_core.metrics.evaluate import evaluate_agents
from drivefine_core.validation.scene_checks import validate_log_scenes

STAGES = ("generate", "ingest", "features", "metric_cache", "scoring")


def run_stages(root: Path, params, executor: Executor) -> dict[str, float]:
    times: dict[str, float] = {}
    t = time.perf_counter()
    world = generate_world(root / "synthetic", params.generate, executor=executor)
    times["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    ingest(root / "synthetic", sorted(world.logs), root / "ingest", params.ingest, progress=False,
           validate=partial(validate_log_scenes, params=params.validation), executor=executor)
    times["ingest"] = time.perf_counter() - t
    scenes = sorted((root / "ingest" / "scenes").glob("*.parquet"))
    t = time.perf_counter()
    for f in scenes:
        build_features_from_scenes_file(f, str(root / "synthetic" / "sensor_blobs"), str(root / "features" / f.stem),
                                        params.features, executor=executor)
    times["features"] = time.perf_counter() - t
    t = time.perf_counter()
    for f in scenes:
        logs = len(set(read_scene_index(f).column("log_name").to_pylist()))
        build_metric_cache_dir(read_scenes(f), root / "synthetic" / "maps", root / "metric_cache" / f.stem,
                               params.metrics, executor=executor, total_logs=logs)
    times["metric_cache"] = time.perf_counter() - t
    caches = [c for f in scenes for c in read_metric_caches(root / "metric_cache" / f.stem)]
    t = time.perf_counter()
    # A chunk per log, so the scoring has as many jobs as the other stages (the stage's default is 256 scenes).
    chunk = max(1, len(caches) // max(1, params.generate.num_logs))
    evaluate_agents(caches, {"constant_velocity": constant_velocity_agent, "human": human_agent},
                    params.metrics.model_copy(update={"chunk_scenes": chunk}), executor)
    times["scoring"] = time.perf_counter() - t
    return times


def executor_for(backend: str, workers: int, tmp: Path) -> tuple[Executor, object]:
    if backend == "pool":
        return make_executor(ExecutorParams(workers=workers)), None
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="WARNING", _temp_dir=str(tmp / f"ray{workers}"))
    return make_executor(ExecutorParams(ray_address="auto")), ray


def same_outputs(a: Path, b: Path) -> list[str]:
    """Files that differ between the two runs (GeoPackages compared by content)."""
    import pyogrio

    names = sorted({str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()} |
                   {str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()})
    differ = []
    for n in names:
        pa, pb = a / n, b / n
        if not (pa.is_file() and pb.is_file()):
            differ.append(n)
        elif n.endswith(".gpkg"):
            layers = [layer for layer, _ in pyogrio.list_layers(pa)]
            if any(not pyogrio.read_dataframe(pa, layer=x).equals(pyogrio.read_dataframe(pb, layer=x)) for x in layers):
                differ.append(n)
        elif pa.read_bytes() != pb.read_bytes():
            differ.append(n)
    return differ


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", choices=("pool", "ray"), default="pool")
    args = ap.parse_args()
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params = params.model_copy(update={"generate": params.generate.model_copy(
        update={"num_logs": args.logs, "frames_per_log": args.frames})})
    load_before = os.getloadavg()
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="drivefine-scale-") as tmp:
        for workers in (1, args.workers):
            executor, ray = executor_for(args.backend, workers, Path(tmp))
            try:
                results[workers] = run_stages(Path(tmp) / f"w{workers}", params, executor)
            finally:
                if ray is not None:
                    ray.shutdown()
        differ = same_outputs(Path(tmp) / "w1", Path(tmp) / f"w{args.workers}")  # ray's temp dirs are not compared
    load_after = os.getloadavg()
    one, many = results[1], results[args.workers]
    print(f"\ndata stages, {args.logs} logs x {args.frames} frames, backend {args.backend}, {os.cpu_count()} cores")
    print(f"{'stage':<14}{'1 worker s':>12}{f'{args.workers} workers s':>14}{'speed-up':>10}")
    for s in (*STAGES, "total"):
        a = sum(one.values()) if s == "total" else one[s]
        b = sum(many.values()) if s == "total" else many[s]
        print(f"{s:<14}{a:>12.1f}{b:>14.1f}{a / b:>9.2f}x")
    print(f"outputs of the two runs: {'identical' if not differ else f'{len(differ)} files differ: {differ[:5]}'}")
    print(f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f} on {os.cpu_count()} cores"
          f"{' - the machine was shared: wall times are upper bounds' if max(load_before[0], load_after[0]) > 0.5 else ''}")


if __name__ == "__main__":
    main()
