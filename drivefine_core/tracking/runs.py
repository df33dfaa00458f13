"""One call opens an MLflow run for a pipeline stage, with its lineage and params attached."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

from drivefine_core.config import flatten
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


def configure(default_uri: str, experiment: str) -> str:
    """Point MLflow at the tracking server (env first) and select the experiment; returns the URI."""
    uri = tracking_uri(default_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment)
    return uri


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
              dep_hashes: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """Open the MLflow run of `stage`: lineage tags (`dep_hashes`: {path: md5} as DVC computed them for
    the stage's deps), flattened params, nested under the flow's run.

    The parent run id comes from DRIVEFINE_PARENT_RUN_ID (set by the Prefect flow, which runs each
    stage in its own `dvc repro` process), so stage runs nest under the flow run in the MLflow UI.
    """
    configure(default_uri, experiment)
    tags = lineage_tags(Path(repo_root), stage, dep_hashes or {})
    parent = os.environ.get(PARENT_RUN_ENV)
    if parent:
        tags["mlflow.parentRunId"] = parent
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        items = list(public_params(params).items())
        for i in range(0, len(items), 100):  # MLflow's batch limit
            mlflow.log_params(dict(items[i : i + 100]))
        yield run
