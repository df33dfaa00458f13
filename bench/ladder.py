"""The planning-quality ladder: the whole pipeline on bench-sized params, in a clone of this repository (the
working tree is never touched), for one or more training seeds, then the evaluate stage's tables.

    .venv/bin/python bench/ladder.py [--dest DIR] [--seeds 0,1] [--threads N] [--overrides bench/ladder_params.yaml]

The data stages (generate, ingest, features, metric_cache) run once; each seed then trains and evaluates in
its own copy of the clone (run.seed and every optimiser seed set to it), the seeds side by side, the cores
shared between them. Prints, per variant, the mean over seeds of every v1 / v2 sub-score and the spread of
PDMS / EPDMS (max - min), the same on the curated test split, the wall time, and the ladder's rungs per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from drivefine_core.models.modes import modes_of

REPO = Path(__file__).resolve().parents[1]
COLS = ["v1/nc", "v1/dac", "v1/ttc", "v1/c", "v1/ep", "v1/pdms", "v2/nc", "v2/dac", "v2/ddc", "v2/tlc",
        "v2/ttc", "v2/ep", "v2/lk", "v2/hc", "v2/ec", "v2/epdms"]


def merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = merge(base.get(k, {}), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def seeded(params: dict, seed: int) -> dict:
    """run.seed (initial weights) and every optimiser / evaluation seed set to `seed`."""
    params["run"]["seed"] = seed
    for phase in ("drivefine", "ar", "flow"):
        params["sft"][phase]["seed"] = seed
    params["rl"]["optim"]["seed"] = seed
    params["evaluate"]["seed"] = seed
    return params


def env_for(threads: int) -> dict[str, str]:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           # seeds start side by side: each flow's temporary Prefect server may take longer than the default 20 s
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def table(scores: list[dict[str, float]], prefix: str = "") -> list[str]:
    variants = sorted({k[len(prefix):].rsplit("/", 2)[0] for s in scores for k in s if k.startswith(prefix)
                       and not k[len(prefix):].startswith("curated/")})
    lines = ["| variant | " + " | ".join(COLS) + " | PDMS spread | EPDMS spread |", "|---|" + "---|" * (len(COLS) + 2)]
    for v in variants:
        vals = {c: np.array([s.get(f"{prefix}{v}/{c}", np.nan) for s in scores]) for c in COLS}
        seen = {c: bool(np.isfinite(x).any()) for c, x in vals.items()}
        cells = [f"{100 * np.nanmean(vals[c]):.1f}" if seen[c] else "-" for c in COLS]
        spread = [f"{100 * np.ptp(vals[c][np.isfinite(vals[c])]):.1f}" if seen[c] else "-" for c in ("v1/pdms", "v2/epdms")]
        lines.append(f"| {v} | " + " | ".join(cells) + " | " + " | ".join(spread) + " |")
    return lines


TRAIN_BUDGET_MIN = 30  # the budget: SFT + RL of one seed on one core


def rungs(s: dict[str, float]) -> dict[str, tuple[bool, str]]:
    p = {k[: -len("/v1/pdms")]: v for k, v in s.items() if k.endswith("/v1/pdms") and not k.startswith("curated/")}

    def best(prefix: str, modes: tuple[str, ...]) -> float:
        return max(p.get(f"{prefix}/{m}", float("nan")) for m in modes)

    df_sft, sv_sft = best("sft", modes_of("drivefine")), best("sft", modes_of("spanvla"))
    learned = {k: v for k, v in p.items() if k.startswith(("sft/", "rl/")) and "shuffled" not in k}
    top = max(learned, key=learned.get)
    cam = [k for k in p if k.endswith("/shuffled-camera")]
    cam_gap = {k: p[k.rsplit("/", 1)[0]] - p[k] for k in cam}
    out = {
        "constant velocity < ego-MLP": (p["constant_velocity"] < p["ego_mlp"], f"{p['constant_velocity']:.3f} < {p['ego_mlp']:.3f}"),
        "DriveFine SFT > ego-MLP": (df_sft > p["ego_mlp"], f"{df_sft:.3f} vs {p['ego_mlp']:.3f}"),
        "SpanVLA SFT > ego-MLP": (sv_sft > p["ego_mlp"], f"{sv_sft:.3f} vs {p['ego_mlp']:.3f}"),
        "best learned within 5 PDMS of human": (p["human"] - learned[top] <= 0.05, f"{top} {learned[top]:.3f} vs {p['human']:.3f}"),
        "RL >= SFT + 1 (DriveFine, mdm+refine)": (p["rl/mdm+refine"] - p["sft/mdm+refine"] >= 0.01,
                                                  f"{p['sft/mdm+refine']:.3f} -> {p['rl/mdm+refine']:.3f}"),
        "RL >= SFT + 1 (flow)": (p["rl/flow"] - p["sft/flow"] >= 0.01, f"{p['sft/flow']:.3f} -> {p['rl/flow']:.3f}"),
        "refinement >= generation + 0.5 (after RL)": (p["rl/mdm+refine"] - p["rl/mdm"] >= 0.005,
                                                       f"{p['rl/mdm']:.3f} -> {p['rl/mdm+refine']:.3f}"),
        "history flow >= noise flow (SFT)": (p["sft/flow"] >= p["sft/flow-noise"], f"{p['sft/flow']:.3f} vs {p['sft/flow-noise']:.3f}"),
    }
    for k, gap in cam_gap.items():
        out[f"camera matters: {k} loses >= 3"] = (gap >= 0.03, f"{gap * 100:+.1f} PDMS lost")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dest", type=Path, default=None)
    ap.add_argument("--overrides", type=Path, default=REPO / "bench/ladder_params.yaml")
    ap.add_argument("--seeds", default="0,1", help="comma-separated training seeds (the data is the same)")
    ap.add_argument("--resume", action="store_true", help="reuse --dest from an earlier run (DVC skips what is done)")
    ap.add_argument("--threads", type=int, default=0, help="threads per seed (0: the cores shared between the seeds); "
                    "the thread count changes float reduction orders, so compare runs on equal threads")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    dest = args.dest or Path(tempfile.mkdtemp(prefix="drivefine-ladder-")) / "repo"
    if not (args.resume and (dest / "dvc.yaml").exists()):
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
        params = merge(yaml.safe_load((dest / "params.yaml").read_text()), yaml.safe_load(args.overrides.read_text()))
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    data = subprocess.run(["dvc", "repro", "features", "metric_cache"], cwd=dest, env=env_for(cores),
                          capture_output=True, text=True)
    if data.returncode != 0:
        sys.exit(f"the data stages failed in {dest}:\n{data.stdout[-2000:]}{data.stderr[-3000:]}")
    t_data = time.perf_counter() - start
    dirs = {}
    for seed in seeds:
        d = dest if seed == seeds[0] else dest.with_name(f"{dest.name}-seed{seed}")
        if d != dest and not (args.resume and (d / "dvc.yaml").exists()):
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(dest, d, symlinks=True)
        params = seeded(yaml.safe_load((d / "params.yaml").read_text()), seed)
        (d / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        dirs[seed] = d
    threads = args.threads or max(1, cores // len(seeds))
    procs = {}
    for s, d in dirs.items():
        procs[s] = subprocess.Popen([str(Path(sys.executable).parent / "drivefine"), "retrain"], cwd=d,
                                    env=env_for(threads), stdout=open(d / "ladder.log", "w"), stderr=subprocess.STDOUT)
        time.sleep(15)  # staggered: the flows' start-up is the most CPU-hungry part of a flow that trains on 1 core
    failed = [s for s, p in procs.items() if p.wait() != 0]
    total = time.perf_counter() - start
    if failed:
        sys.exit(f"the pipeline failed for seed(s) {failed}; logs: {[str(dirs[s] / 'ladder.log') for s in failed]}")
    scores = [json.loads((dirs[s] / "metrics/evaluate.json").read_text()) for s in seeds]
    print(f"ladder in {dest} (seeds {seeds}): data stages {t_data / 60:.1f} min, whole run {total / 60:.1f} min "
          f"({threads} thread(s) per seed)\n")
    print("Test split, mean over seeds (x100):\n")
    print("\n".join(table(scores)))
    summary = json.loads((dirs[seeds[0]] / "data/evaluation/summary.json").read_text())
    print(f"\nCurated test split ({summary.get('curated_scenes')} of {summary.get('scenes')} scenes), mean over seeds:\n")
    print("\n".join(table(scores, "curated/")))
    print()
    budget: dict[int, float] = {}
    for s, d in dirs.items():
        log = (d / "ladder.log").read_text()
        times = dict(re.findall(r"stage (\w+): ran in ([\d.]+) s", log))
        print(f"seed {s} stage minutes: " + ", ".join(f"{k} {float(v) / 60:.1f}" for k, v in times.items()))
        budget[s] = sum(float(times.get(k, "nan")) for k in ("sft", "rl")) / 60
    print()
    for s, minutes in budget.items():
        print(f"seed {s}: {'yes' if minutes <= TRAIN_BUDGET_MIN else 'NO '}  SFT + RL within {TRAIN_BUDGET_MIN} "
              f"minutes on {threads} thread(s)  ({minutes:.1f} min)")
    for s, sc in zip(seeds, scores):
        for rung, (ok, detail) in rungs(sc).items():
            print(f"seed {s}: {'yes' if ok else 'NO '}  {rung}  ({detail})")


if __name__ == "__main__":
    main()
