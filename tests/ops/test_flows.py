"""The ops flows' bodies without a Prefect server: ingest-new-logs with its trigger, GPU routing of
retrain-routed. (The full run under Prefect is tests/ops/test_e2e_ingest_flow.py, marked slow.)"""

from __future__ import annotations

import pickle

import pytest
from prefect.logging import disable_run_logger

from drivefine_core.ops.params import REMOTE_URL_ENV
from flows import deployments
from flows.ingest_new_logs import ingest_new_logs
from tests.repo_copy import REPO

pytestmark = pytest.mark.integration


def test_ingest_flow_configures_the_remote_and_triggers_a_retrain_only_on_new_data(
        git_dvc_repo, s3_bucket, s3_client, monkeypatch):
    s3_client.put_object(Bucket=s3_bucket, Key="navsim_logs/trainval/log_a.pkl", Body=pickle.dumps({"a": 1}))
    monkeypatch.setenv(REMOTE_URL_ENV, f"s3://{s3_bucket}/dvc")
    retrains = []
    monkeypatch.setattr(deployments, "retrain_routed",
                        lambda repo_root, stages: retrains.append((repo_root, stages)))
    with disable_run_logger():
        first = ingest_new_logs.fn(repo_root=str(git_dvc_repo), bucket=s3_bucket, trigger="subflow",
                                   retrain_stages=["check_env"])
        second = ingest_new_logs.fn(repo_root=str(git_dvc_repo), bucket=s3_bucket, trigger="subflow")
    assert first["new"] == ["trainval/log_a.pkl"] and first["triggered"] == "subflow"
    assert second["new"] == [] and second["triggered"] == "none"
    assert retrains == [(str(git_dvc_repo), ["check_env"])]  # one retrain, for the one new data version
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="dvc/")["Contents"]]
    assert len(keys) == first["pushed"] == 3  # pushed to the remote named by the environment
    assert (git_dvc_repo / "incoming/navsim_logs.dvc").exists()


def test_segments_keep_graph_order():
    order = ["ingest", "features", "metric_cache", "sft", "rl", "evaluate", "register"]
    assert deployments.segments(order, ["sft", "rl", "evaluate"]) == [
        (False, ["ingest", "features", "metric_cache"]), (True, ["sft", "rl", "evaluate"]), (False, ["register"])]
    assert deployments.segments(["a", "g", "b", "h"], ["g", "h"]) == [
        (False, ["a"]), (True, ["g"]), (False, ["b"]), (True, ["h"])]


def test_gpu_stages_go_to_the_deployment_and_cpu_stages_run_here(monkeypatch):
    calls = []
    monkeypatch.setattr(deployments, "_run_on_gpu_pool",
                        lambda dep, stages, force, timeout: calls.append(("gpu", dep, stages)) or [])
    monkeypatch.setattr(deployments, "retrain", lambda repo_root, stages, force: calls.append(("here", stages)) or [])
    order = deployments.dvc_graph.stage_order(REPO)
    gpu = order[-1:]
    with disable_run_logger():
        deployments.retrain_routed.fn(repo_root=str(REPO), gpu_stages=gpu, gpu_deployment="retrain/gpu-stages",
                                      configure_remote=False)
    expected = [("here", order[:-1])] if len(order) > 1 else []
    assert calls == expected + [("gpu", "retrain/gpu-stages", gpu)]
    calls.clear()
    with disable_run_logger():
        deployments.retrain_routed.fn(repo_root=str(REPO), gpu_stages=gpu, gpu_deployment="",
                                      configure_remote=False)
    assert calls == ([("here", order[:-1]), ("here", gpu)] if len(order) > 1 else [("here", gpu)])
    with pytest.raises(ValueError, match="unknown stage"), disable_run_logger():
        deployments.retrain_routed.fn(repo_root=str(REPO), stages=["no_such_stage"], configure_remote=False)


def test_routed_retrain_checks_the_s3_remote_and_writes_no_config(git_dvc_repo, s3_bucket, monkeypatch):
    monkeypatch.setenv(REMOTE_URL_ENV, f"s3://{s3_bucket}/dvc")
    monkeypatch.setattr(deployments, "retrain", lambda **kw: pytest.fail("no stages in this repo"))
    with disable_run_logger():
        assert deployments.retrain_routed.fn(repo_root=str(git_dvc_repo)) == []
    assert not (git_dvc_repo / ".dvc" / "config.local").exists()  # the run's remote is never persisted
