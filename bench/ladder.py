"""The planning-quality ladder: the whole pipeline on bench-sized params, in a clone of this
repository (the working tree is never touched), then the evaluate stage's table.

    .venv/bin/python bench/ladder.py [--dest DIR] [--overrides bench/ladder_params.yaml]

Prints every variant's v1 and v2 sub-scores, the wall time per stage, and checks the ladder's rungs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = merge(base.get(k, {}), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dest", type=Path, default=None)
    ap.add_argument("--overrides", type=Path, default=REPO / "bench/ladder_params.yaml")
    ap.add_argument("--resume", action="store_true", help="reuse --dest from an earlier run (DVC skips what is done)")
    args = ap.parse_args()
    dest = args.dest or Path(tempfile.mkdtemp(prefix="drivefine-ladder-")) / "repo"
    if not (args.resume and (dest / "dvc.yaml").exists()):
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
        params = merge(yaml.safe_load((dest / "params.yaml").read_text()), yaml.safe_load(args.overrides.read_text()))
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "drivefine"), "retrain"], cwd=dest, env=env,
                          capture_output=True, text=True)
    total = time.perf_counter() - start
    (dest / "ladder.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"the pipeline failed; log: {dest / 'ladder.log'}\n{proc.stderr[-3000:]}")
    scores = json.loads((dest / "metrics/evaluate.json").read_text())
    variants = sorted({k.rsplit("/", 2)[0] for k in scores})
    cols = ["v1/nc", "v1/dac", "v1/ttc", "v1/c", "v1/ep", "v1/pdms", "v2/nc", "v2/dac", "v2/ddc", "v2/tlc",
            "v2/ttc", "v2/ep", "v2/lk", "v2/hc", "v2/epdms"]
    print(f"ladder on {dest} ({total / 60:.1f} min for the whole pipeline)\n")
    print("| variant | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for v in variants:
        print(f"| {v} | " + " | ".join(f"{100 * scores.get(f'{v}/{c}', float('nan')):.1f}" for c in cols) + " |")
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("| ") and ("| ran |" in line or "| up to date |" in line):
            print(line)
    pdms = {v: scores.get(f"{v}/v1/pdms", float("nan")) for v in variants}
    learned = {v: s for v, s in pdms.items() if v.startswith(("sft/", "rl/"))}
    best = max(learned, key=learned.get) if learned else None
    rungs = {
        "constant velocity < ego-MLP": pdms["constant_velocity"] < pdms["ego_mlp"],
        "ego-MLP < best SFT planner": pdms["ego_mlp"] < max(s for v, s in learned.items() if v.startswith("sft/")),
        "best SFT < best RL": max(s for v, s in learned.items() if v.startswith("sft/"))
        < max(s for v, s in learned.items() if v.startswith("rl/")),
        "refinement >= generation (SFT)": pdms["sft/mdm+refine"] >= pdms["sft/mdm"],
        "history flow >= noise flow (SFT)": pdms["sft/flow"] >= pdms["sft/flow-noise"],
        f"best learned ({best}) within 5 PDMS points of human": pdms["human"] - learned[best] <= 0.05,
    }
    print()
    for rung, ok in rungs.items():
        print(f"{'yes' if ok else 'NO '}  {rung}")


if __name__ == "__main__":
    main()
