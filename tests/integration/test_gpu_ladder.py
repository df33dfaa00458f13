"""bench/gpu_ladder.py: its whole code path on a CPU at the tiny size, from the pipeline's features, scenes and
maps alone (the metric caches it builds itself), and no number at all without CUDA."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/gpu_ladder.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.integration
@pytest.mark.slow  # shares the pipeline fixture with the other slow end-to-end tests (make test-slow; CI runs it)
def test_the_gpu_ladder_trains_rl_tunes_and_scores_every_mode_from_scenes_and_maps(pipeline, tmp_path: Path) -> None:
    repo = pipeline[0]
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(repo / "params.yaml", clone / "params.yaml")
    for part in ("data/features", "data/ingest/scenes", "data/synthetic/maps"):  # no metric caches: they are big
        shutil.copytree(repo / part, clone / part)
    out = tmp_path / "scores.json"
    proc = _run("--data", str(clone), "--device", "cpu", "--small", "--budget-s", "240", "--workers", "1",
                "--json", str(out))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert sorted(p.name for p in (clone / "data/metric_cache").iterdir()) == ["test", "train"]
    result = json.loads(out.read_text())
    scores = result["scores"]
    for stage in ("sft", "rl"):  # the tiny params evaluate these two modes
        for mode in ("mdm+refine", "flow"):
            assert 0.0 <= scores[f"{stage}/{mode}/v1/pdms"] <= 1.0, (stage, mode)
            assert f"{stage}/{mode}/v2/epdms" in scores
    assert "rl/flow/shuffled-camera/v1/pdms" in scores  # the camera ablation of the last stage
    assert set(result["minutes"]) == {"sft/drivefine", "sft/spanvla", "rl/drivefine", "rl/spanvla"}
    assert all(v > 0 for v in result["ms_per_step"].values())
    assert "| human |" in proc.stdout and "Curated test split" in proc.stdout


def test_without_cuda_it_says_so_and_measures_nothing(tmp_path: Path) -> None:
    proc = _run("--data", str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert proc.stdout == "" and "no CUDA device" in proc.stderr
