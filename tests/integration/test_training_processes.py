"""The sft and rl stages under `accelerate launch` through their real stage command (dvc.yaml's cmd): 2 CPU
processes (gloo) with grad_accum 1 train the same weights as 1 process with grad_accum 2 (the same global
batch), and only the main process writes outputs and MLflow runs. Data: the feature store and metric
caches the session's pipeline run built."""

import json
import shutil
import subprocess

import pytest
import yaml
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from tests.integration.tiny_params import TINY
from tests.repo_copy import make_repo_copy

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow; CI runs it
VARIANTS = ("drivefine", "spanvla")
TRAINING = {"sft.drivefine.batch_size": 2, "sft.ar.batch_size": 2, "sft.flow.batch_size": 2,
            "rl.optim.batch_size": 1, "rl.optim.lr": 0.001}


def _split(processes: int, grad_accum: int) -> dict:
    return {"launch.processes": processes, "launch.threads_per_process": 1,
            **{f"sft.{p}.grad_accum": grad_accum for p in ("drivefine", "ar", "flow")},
            "rl.optim.grad_accum": grad_accum}


def _train(pipeline, tmp_path, processes: int, grad_accum: int):
    """Run sft then rl with the stage commands of dvc.yaml in a repository copy holding the pipeline's data."""
    source, env, server, _, _ = pipeline
    repo = make_repo_copy(tmp_path / f"p{processes}", {**TINY, **TRAINING, **_split(processes, grad_accum)})
    for folder in ("data/features", "data/metric_cache"):
        shutil.copytree(source / folder, repo / folder)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for stage in ("sft", "rl"):
        proc = subprocess.run(stages[stage]["cmd"], shell=True, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        assert f"--num_processes {processes}" in proc.stderr  # it went through accelerate launch
    return repo


def _runs(server, stage: str) -> int:
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("drivefine")
    return 0 if exp is None else len(client.search_runs([exp.experiment_id], f"attributes.run_name = '{stage}'"))


@pytest.mark.timeout(1200)  # run alone, the session's pipeline run (the data) counts against this test
def test_two_processes_train_the_weights_of_one(pipeline, tmp_path):
    server = pipeline[2]
    runs_before = {s: _runs(server, s) for s in ("sft", "rl")}
    one = _train(pipeline, tmp_path, processes=1, grad_accum=2)
    two = _train(pipeline, tmp_path, processes=2, grad_accum=1)
    assert {s: _runs(server, s) - runs_before[s] for s in ("sft", "rl")} == {"sft": 2, "rl": 2}  # main only
    for stage in ("sft", "rl"):
        assert json.loads((two / f"metrics/{stage}.json").read_text())["processes"] == 2
        assert json.loads((one / f"metrics/{stage}.json").read_text())["processes"] == 1
        for variant in VARIANTS:
            a = load_file(one / f"models/{stage}/{variant}/model.safetensors")
            b = load_file(two / f"models/{stage}/{variant}/model.safetensors")
            assert a.keys() == b.keys()
            worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
            assert worst < 1e-5, (stage, variant, worst)
    # the test could fail: RL moved DriveFine's weights away from its SFT weights
    sft = load_file(two / "models/sft/drivefine/model.safetensors")
    rl = load_file(two / "models/rl/drivefine/model.safetensors")
    assert any(not (sft[k] == rl[k]).all() for k in sft)
    assert not (two / "data/checkpoints/sft").exists()
