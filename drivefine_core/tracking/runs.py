"""One call opens an MLflow run for a pipeline stage, with its lineage and params attached."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

from drivefine_core.config import flatten
from drivefine_core.pipeline_params import TrackingParams
from drivefine_core.tracking.lineage import data_digest, dvc_tags, git_state, is_secret

PARENT_RUN_ENV = "DRIVEFINE_PARENT_RUN_ID"
# Environment variables worth recording (where the run pointed), minus anything secret-looking.
RUNTIME_ENV = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL",
               "AWS_DEFAULT_REGION", "CUDA_VISIBLE_DEVICES")
_MAX_PARAM_LEN = 6000


def metric_key(name: str) -> str:
    """A name MLflow accepts for a metric (alphanumerics, _ - . space : /); '+' reads as _plus_."""
    return re.sub(r"[^\w\-. :/]", "_", name.replace("+", "_plus_"))


def without_userinfo(uri: str) -> str:
    """http://user:pass@host/x -> http://host/x: a URI's credentials never become a tag."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1", uri)


def tracking_uri(default: str = "sqlite:///mlflow.db") -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default


class TrackingUnreachable(ConnectionError):
    """The MLflow tracking server did not answer in time; the message names its URI. A ConnectionError,
    so a stage that meets it exits as transient and the flow retries it."""


# MLflow reads these on every HTTP request; stage processes inherit them from the flow.
TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
HTTP_ENV = {"http_max_retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
            "http_backoff_factor": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"}


def configure(default_uri: str, experiment: str, http: TrackingParams | None = None) -> str:
    """Point MLflow at the tracking server (env first) with the HTTP timeouts of params `tracking`, and
    select the experiment; returns the URI. A server that does not answer this first request raises
    TrackingUnreachable within about http_connect_timeout_s x (retries + 1) seconds."""
    limits = http or TrackingParams()
    for field, env in HTTP_ENV.items():
        os.environ[env] = str(getattr(limits, field))
    os.environ[TIMEOUT_ENV] = str(limits.http_connect_timeout_s)  # is the server there at all?
    uri = tracking_uri(default_uri)
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment)
    except Exception as exc:
        if not uri.startswith(("http://", "https://")) or not _no_answer(exc):
            raise
        raise TrackingUnreachable(
            f"MLflow tracking server {without_userinfo(uri)} did not answer (timeout "
            f"{limits.http_connect_timeout_s} s, {limits.http_max_retries} retries; params tracking.http_*): "
            f"{_reason(exc)}") from None
    finally:
        os.environ[TIMEOUT_ENV] = str(limits.http_timeout_s)  # it answered: uploads may take longer
    return uri


def _no_answer(exc: BaseException) -> bool:
    """MLflow wraps a refused / timed-out connection in MlflowException; the cause chain or text says so."""
    import requests

    text = str(exc)
    return isinstance(exc, (ConnectionError, requests.exceptions.RequestException)) or any(
        s in text for s in ("Max retries exceeded", "Connection refused", "timed out", "Failed to establish"))


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, in one short line."""
    text = str(exc)
    m = re.search(r"Caused by \w+\((.*)\)\)\s*$", text)
    return (m.group(1) if m else text.splitlines()[0] if text else type(exc).__name__)[:300]


def process_tags() -> dict[str, str]:
    """Which process holds a run open (host, pid, its start time): a run still RUNNING once that process
    is gone was abandoned (kill -9, a lost machine) and is marked FAILED by fail_abandoned_runs."""
    import psutil

    me = psutil.Process()
    return {"drivefine.host": socket.gethostname(), "drivefine.pid": str(me.pid),
            "drivefine.pid_started": f"{me.create_time():.3f}"}


def _process_alive(pid: int, started: float) -> bool:
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0  # same pid, same process (not a reuse)
    except psutil.Error:
        return False


def fail_abandoned_runs(experiment: str) -> list[str]:
    """Mark FAILED every run of `experiment` still RUNNING whose process (on this host) has ended; returns
    their ids. Runs opened on another host are left alone: their process cannot be checked from here."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment)
    if exp is None:
        return []
    host = socket.gethostname()
    runs = client.search_runs([exp.experiment_id], max_results=1000,
                              filter_string=f"attributes.status = 'RUNNING' and tags.`drivefine.host` = '{host}'")
    failed = []
    for run in runs:
        tags = run.data.tags
        try:
            pid, started = int(tags["drivefine.pid"]), float(tags["drivefine.pid_started"])
        except (KeyError, ValueError):
            continue
        if _process_alive(pid, started):
            continue  # still running (a concurrent flow)
        client.set_tag(run.info.run_id, "drivefine.abandoned",
                       f"process {pid} on {host} ended without closing this run; marked FAILED at the next start")
        client.set_terminated(run.info.run_id, "FAILED")
        failed.append(run.info.run_id)
    return failed


def public_params(params: Any) -> dict[str, str]:
    """Flattened params with secret-looking keys dropped and values made loggable."""
    out = {}
    for key, value in flatten(params).items():
        if is_secret(key):
            continue
        out[key] = str(value)[:_MAX_PARAM_LEN]
    return out


def context_tags(repo_root: Path) -> dict[str, str]:
    """Where a run came from: the git commit and dirty flag, and the endpoints the environment names."""
    commit, dirty = git_state(repo_root)
    tags = {"git.commit": commit, "git.dirty": str(dirty).lower()}
    for name in RUNTIME_ENV:
        if name in os.environ and not is_secret(name):
            tags[f"env.{name}"] = without_userinfo(os.environ[name])
    return tags


def lineage_tags(repo_root: Path, stage: str, dep_hashes: dict[str, str]) -> dict[str, str]:
    """Where a stage run came from: git, the hashes DVC computed for its deps ({path: md5}), a data digest."""
    tags = {"drivefine.stage": stage, **context_tags(repo_root), "data.digest": data_digest(dep_hashes)}
    return {**tags, **dvc_tags(stage, dep_hashes)}


@contextmanager
def stage_run(stage: str, params: Any, *, default_uri: str = "sqlite:///mlflow.db",
              experiment: str = "drivefine", repo_root: str | Path = ".",
              dep_hashes: dict[str, str] | None = None,
              http: TrackingParams | None = None) -> Iterator[mlflow.ActiveRun]:
    """Open the MLflow run of `stage`: lineage tags (`dep_hashes`: {path: md5} as DVC computed them for
    the stage's deps), flattened params, nested under the flow's run.

    The parent run id comes from DRIVEFINE_PARENT_RUN_ID (set by the Prefect flow, which runs each
    stage in its own `dvc repro` process), so stage runs nest under the flow run in the MLflow UI.
    """
    configure(default_uri, experiment, http)
    tags = {**lineage_tags(Path(repo_root), stage, dep_hashes or {}), **process_tags()}
    parent = os.environ.get(PARENT_RUN_ENV)
    if parent:
        tags["mlflow.parentRunId"] = parent
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        items = list(public_params(params).items())
        for i in range(0, len(items), 100):  # MLflow's batch limit
            mlflow.log_params(dict(items[i : i + 100]))
        yield run
