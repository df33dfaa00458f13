"""Import time of every stage module (each stage is its own process, so it pays this at every run), and
of the flow entry points; a regression in start-up shows here.

    .venv/bin/python bench/startup.py [--repeats 3] [--root .]

Each measurement is a fresh interpreter importing one module (best of --repeats, wall seconds); the
heavy packages that import pulled in are listed beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

HEAVY = ("torch", "mlflow", "great_expectations", "prefect", "dvc", "pandas", "pyarrow", "boto3", "geopandas")
EXTRA = ("drivefine_core.config", "flows.retrain", "flows.cli")

_PROBE = """
import json, sys, time
t = time.perf_counter()
import {module}
dt = time.perf_counter() - t
print(json.dumps({{"s": dt, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def import_time(root: Path, module: str, repeats: int) -> tuple[float, list[str]]:
    best, heavy = float("inf"), []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", _PROBE.format(module=module, heavy=HEAVY)], cwd=root,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"import {module} failed:\n{proc.stderr[-2000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        best, heavy = min(best, out["s"]), out["heavy"]
    return best, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    args = parser.parse_args()
    root = Path(args.root).resolve()
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    modules = [spec["cmd"].split()[-1] for spec in stages.values()] + list(EXTRA)
    print(f"| module | import s (best of {args.repeats}) | heavy packages imported |")
    print("|---|---|---|")
    for module in modules:
        seconds, heavy = import_time(root, module, args.repeats)
        print(f"| {module} | {seconds:.2f} | {', '.join(heavy) or '-'} |", flush=True)


if __name__ == "__main__":
    main()
