"""`kill -9` of `drivefine retrain` in the middle of a stage: the stage's process and Prefect's temporary
server end with it (flows/process_guard.py), and the next start marks the flow's MLflow run FAILED."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from tests.repo_copy import VENV_BIN, make_repo_copy, pipeline_env, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow; CI runs it

# Two independent stages: one that sleeps (the flow is killed while it runs), one that finishes at once.
DVC_YAML = """\
stages:
  sleeper:
    cmd: python sleeper.py
    deps: [sleeper.py]
    outs: [slept.txt]
  quick:
    cmd: python -c "open('quick.txt', 'w').write('ok')"
    outs: [quick.txt]
"""
SLEEPER = """\
import os, pathlib, time
pathlib.Path("sleeper.pid").write_text(str(os.getpid()))
time.sleep(600)
pathlib.Path("slept.txt").write_text("done")
"""


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"retrain ended (rc {proc.returncode}) before the stage started:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} not written within {timeout} s")
        time.sleep(0.2)


def test_killed_flow_leaves_no_process_and_its_run_is_failed_at_the_next_start(tmp_path):
    repo = make_repo_copy(tmp_path / "drivefine")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "dvc.lock").unlink(missing_ok=True)
    (repo / "sleeper.py").write_text(SLEEPER)
    env = pipeline_env(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    log = tmp_path / "retrain.log"  # a file, not a pipe: a process left behind would hold a pipe open
    with open(log, "w") as out:
        flow = subprocess.Popen([os.path.join(VENV_BIN, "drivefine"), "retrain", "--stage", "sleeper"], cwd=repo,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    left: list[psutil.Process] = []
    try:
        _wait_for(repo / "sleeper.pid", flow, log, timeout=240)
        stage_pid = int((repo / "sleeper.pid").read_text())
        left = psutil.Process(flow.pid).children(recursive=True)
        names = [" ".join(p.cmdline()) for p in left]
        assert stage_pid in {p.pid for p in left}
        assert any("uvicorn" in n and "prefect" in n for n in names), names  # Prefect's temporary server
        os.kill(flow.pid, signal.SIGKILL)  # no cleanup code of the flow runs
        flow.wait(timeout=30)
        _, alive = psutil.wait_procs(left, timeout=30)
        assert not alive, [" ".join(p.cmdline()) for p in alive]
    finally:  # when the test fails, it leaves nothing running either
        if flow.poll() is None:
            flow.kill()
        for proc in left:
            try:
                proc.kill()
            except psutil.Error:
                pass

    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    [killed] = client.search_runs([client.get_experiment_by_name("drivefine").experiment_id])
    assert killed.info.status == "RUNNING"  # nothing could close it
    proc = run_cli(repo, "retrain", "--stage", "quick", env=env, timeout=300)  # the next start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"marked FAILED 1 MLflow run(s) left RUNNING by a process that ended: {killed.info.run_id}" in proc.stdout + proc.stderr
    runs = {r.info.run_id: r for r in client.search_runs([killed.info.experiment_id])}
    assert runs[killed.info.run_id].info.status == "FAILED"
    assert "ended without closing this run" in runs[killed.info.run_id].data.tags["drivefine.abandoned"]
    [second] = [r for rid, r in runs.items() if rid != killed.info.run_id]
    assert second.info.status == "FINISHED" and (repo / "quick.txt").read_text() == "ok"
