"""An MLflow server that does not answer (accepts connections, never replies) fails within seconds, with
its URI named, using the timeouts of params `tracking`; a run left RUNNING by a dead process is failed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from drivefine_core.pipeline_params import TrackingParams
from drivefine_core.tracking.runs import (
    HTTP_ENV,
    TIMEOUT_ENV,
    TrackingUnreachable,
    configure,
    fail_abandoned_runs,
    process_tags,
)
from tests.repo_copy import make_repo_copy, pipeline_env, run_cli
from tests.servers import local_tracking


@pytest.fixture
def silent_server():
    """A listening socket that never accepts: connections succeed (backlog), requests never get an answer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_configure_fails_within_the_params_timeout_naming_the_uri(silent_server, monkeypatch):
    for name in [*HTTP_ENV.values(), TIMEOUT_ENV]:  # configure() sets them: restored after the test
        monkeypatch.setenv(name, "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_server)
    start = time.monotonic()
    with pytest.raises(TrackingUnreachable, match=rf"MLflow tracking server {silent_server} did not answer "
                                                  r"\(timeout 1 s, 1 retries.*timed out"):
        configure("sqlite:///unused.db", "x", TrackingParams(http_connect_timeout_s=1, http_max_retries=1))
    assert time.monotonic() - start < 10  # MLflow's defaults: 120 s x 8 tries
    assert os.environ[TIMEOUT_ENV] == "120"  # later requests (uploads) get the longer http_timeout_s


@pytest.mark.integration
def test_retrain_against_a_silent_server_is_one_line_within_seconds(tmp_path, silent_server):
    repo = make_repo_copy(tmp_path / "drivefine", {"tracking.http_connect_timeout_s": 1, "tracking.http_max_retries": 1})
    start = time.monotonic()
    proc = run_cli(repo, "retrain", env=pipeline_env(MLFLOW_TRACKING_URI=silent_server), timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.startswith(f"error: MLflow tracking server {silent_server} did not answer")
    assert len(proc.stderr.strip().splitlines()) == 1  # no traceback
    assert time.monotonic() - start < 60  # CLI start-up + about 3 s of timeouts, on a loaded machine


def test_only_runs_of_ended_processes_are_failed(tmp_path):
    local_tracking(tmp_path, "abandoned")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_tags = {**process_tags(), "drivefine.pid": gone.stdout.strip()}  # a process that has ended
    client = MlflowClient()
    exp = client.get_experiment_by_name("abandoned").experiment_id
    dead = client.create_run(exp, tags=dead_tags, run_name="killed")
    alive = client.create_run(exp, tags=process_tags(), run_name="this process")
    elsewhere = client.create_run(exp, tags={**dead_tags, "drivefine.host": "another-host"}, run_name="remote")
    assert fail_abandoned_runs("abandoned") == [dead.info.run_id]
    status = {r.info.run_name: r.info.status for r in client.search_runs([exp])}
    assert status == {"killed": "FAILED", "this process": "RUNNING", "remote": "RUNNING"}
    for run in (alive, elsewhere):
        client.set_terminated(run.info.run_id)
