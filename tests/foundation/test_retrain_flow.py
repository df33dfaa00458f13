"""The retrain flow end to end in a copy of the repository: real `dvc repro`, real Prefect flow run
(ephemeral), real MLflow server over HTTP; assertions read back what MLflow recorded."""

import subprocess
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.repo_copy import make_repo_copy, pipeline_env, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mlflow_server):
    repo = make_repo_copy(tmp_path_factory.mktemp("repo") / "drivefine", {"run.seed": 7})
    env = pipeline_env(MLFLOW_TRACKING_URI=mlflow_server.url, MLFLOW_EXPERIMENT_NAME="flow-test")
    timings, outputs = [], []
    for _ in range(2):
        start = time.perf_counter()
        proc = run_cli(repo, "retrain", "--stage", "check_env", env=env)
        timings.append(time.perf_counter() - start)
        outputs.append(proc)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return repo, outputs, timings, MlflowClient(mlflow_server.url)


def _runs(client, name=None):
    exp = client.get_experiment_by_name("flow-test")
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if name is None or r.info.run_name == name]


@pytest.mark.slow  # two flow runs in a repository copy: make test-slow; CI runs it
def test_first_run_ran_the_stage_and_second_skipped_it(two_runs):
    repo, outputs, timings, _ = two_runs
    first, second = (o.stdout + o.stderr for o in outputs)
    assert "| check_env | ran |" in first
    assert "| check_env | up to date |" in second
    assert "ran 0 stage(s)" in outputs[1].stdout
    assert (repo / "data/env/environment.json").exists()
    print(f"first run {timings[0]:.1f} s, no-change re-run {timings[1]:.1f} s")


@pytest.mark.slow  # two flow runs in a repository copy: make test-slow; CI runs it
def test_stage_run_is_nested_under_the_flow_run_with_lineage(two_runs):
    repo, _, _, client = two_runs
    parents = _runs(client, "retrain")
    stages = _runs(client, "check_env")
    assert len(parents) == 2 and len(stages) == 1  # the skipped stage logged no second run
    stage = stages[0]
    assert stage.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert stage.data.tags["git.commit"] == head
    assert stage.data.tags["git.dirty"] == "false"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["check_env"]
    for dep in lock["deps"]:
        assert stage.data.tags[f"dvc.check_env.{dep['path']}"] == dep["md5"]
    assert len(stage.data.tags["data.digest"]) == 64
    assert stage.data.params["seed"] == "7"
    assert stage.data.tags["version.torch"].startswith("2.13.0")


@pytest.mark.slow  # two flow runs in a repository copy: make test-slow; CI runs it
def test_flow_run_carries_stage_metrics_and_summary(two_runs):
    _, _, _, client = two_runs
    first = min(_runs(client, "retrain"), key=lambda r: r.info.start_time)
    assert first.data.metrics["check_env.cpu_count"] >= 1
    assert first.data.tags["stages.ran"] == "check_env"
    assert first.data.tags["prefect.flow_run_id"]
    summary = client.download_artifacts(first.info.run_id, "retrain_summary.md")
    assert "check_env" in open(summary).read()


def test_bad_params_fail_before_any_stage(tmp_path):
    repo = make_repo_copy(tmp_path / "bad", {"run.sede": 1, "promotion.min_gain": "lots"})
    proc = run_cli(repo, "retrain", env=pipeline_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db"))
    assert proc.returncode == 2
    assert "run.sede: unknown key" in proc.stderr
    assert "promotion.min_gain" in proc.stderr and "'lots'" in proc.stderr
    assert not (repo / "metrics").exists() and not (tmp_path / "m.db").exists()
