"""bench/gpu_check.py: its whole code path on a CPU at the tiny size, and no number at all without CUDA."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/gpu_check.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_the_check_runs_every_part_on_a_cpu_at_the_small_size(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = _run("--device", "cpu", "--small", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    items = [(r["item"], r["setting"]) for r in rows]
    for phase in ("drivefine", "ar", "flow"):
        assert (f"SFT step {phase}", "batch 4, bf16") in items
    assert {i for i, _ in items if i.startswith("RL step")} == {"RL step drivefine", "RL step spanvla"}
    for mode in ("mdm", "mdm+refine", "ar", "flow", "flow-noise"):
        assert (f"decode {mode}", "batch 1") in items and (f"decode {mode}", "batch 32") in items
    assert {i for i, _ in items if i.startswith("scorer")} == {"scorer, first sight", "scorer, RL rewards"}
    assert all(r["ms"] > 0 and math.isfinite(r["rate"]) and r["rate"] > 0 for r in rows)
    assert "| decode flow | batch 32 |" in proc.stdout  # the one table


def test_without_cuda_it_says_so_and_measures_nothing() -> None:
    proc = _run(env={"CUDA_VISIBLE_DEVICES": ""})  # no device visible, whatever the machine has
    assert proc.returncode == 2
    assert proc.stdout == "" and "no CUDA device" in proc.stderr
