"""Slow end-to-end run (100-200 s on a loaded 2-core machine, most of it the ephemeral Prefect server's
start-up), marked `slow`: `make test-slow` and CI run it, `make test` does not.

The ingest-new-logs flow in a copy of this repository: ephemeral Prefect, the retrain triggered as a subflow
(it runs the stages of dvc.yaml), the DVC remote taken from the environment, on moto S3.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys

import pytest

from drivefine_core.ops.params import REMOTE_URL_ENV
from tests.repo_copy import make_repo_copy, pipeline_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_FLOW = """
import json, sys
from flows.ingest_new_logs import ingest_new_logs
print("REPORT=" + json.dumps(ingest_new_logs(bucket=sys.argv[1], trigger="subflow",
                                                 retrain_stages=["check_env"])))
"""


def test_ingest_flow_records_data_and_triggers_retrain(tmp_path, s3_bucket, s3_client, s3_env):
    repo = make_repo_copy(tmp_path / "drivefine")
    s3_client.put_object(Bucket=s3_bucket, Key="navsim_logs/trainval/log_a.pkl", Body=pickle.dumps({"a": 1}))
    env = pipeline_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db", PREFECT_HOME=str(tmp_path / "prefect"),
                       PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
                       **{REMOTE_URL_ENV: f"s3://{s3_bucket}/dvc"})
    # Own process group: on a timeout the ephemeral Prefect server the flow started goes down with it.
    child = subprocess.Popen([sys.executable, "-c", RUN_FLOW, s3_bucket], cwd=repo, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(timeout=580)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGTERM)
        out, err = child.communicate()
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT=")[1].splitlines()[0])
    assert report["new"] == ["trainval/log_a.pkl"] and report["triggered"] == "subflow"
    assert report["pushed"] == 3  # log, manifest, directory listing
    log = subprocess.run(["git", "log", "--format=%s", "-1", "--", "incoming/navsim_logs.dvc"], cwd=repo,
                         capture_output=True, text=True).stdout
    assert "ingest 1 new log(s)" in log
    assert (repo / "metrics/check_env.json").exists()  # the retrain ran the pipeline's stages
    assert "| check_env | ran |" in proc.stdout + proc.stderr
    # the DVC remote came from the environment and the retrain pushed its outputs there too
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="dvc/")["Contents"]]
    assert len(keys) > report["pushed"]

