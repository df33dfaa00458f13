"""Registering planners in the MLflow model registry, with lineage and scores as version tags."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlflow
import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from drivefine_core.ops.params import ServingParams
from drivefine_core.tracking.lineage import dvc_tags, lock_hashes
from drivefine_core.tracking.planner_pyfunc import log_planner_model
from drivefine_core.tracking.promotion import CANDIDATE

SCORE_PREFIX = "score."


def params_digest(params_file: str | Path = "params.yaml") -> str:
    data = yaml.safe_load(Path(params_file).read_text()) or {}
    return hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()[:16]


def dvc_lock_tags(lock_file: str | Path = "dvc.lock", stages: tuple[str, ...] = ()) -> dict[str, str]:
    """`dvc.<stage>.<path>` = md5 for the deps and outs dvc.lock records (all stages or some)."""
    path = Path(lock_file)
    if not path.exists():
        return {}
    tags = {"dvc.lock.sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}
    for stage, hashes in lock_hashes(path).items():
        if not stages or stage in stages:
            tags.update(dvc_tags(stage, hashes))
    return tags


def register_planner(planner_dir: str | Path, mode: str, input_example: pd.DataFrame, model_name: str,
                     tags: dict[str, str], scores: dict[str, float], limits: ServingParams | None = None) -> str:
    """Log the planner as a pyfunc in the active run (with the request limits it is served with), register
    a new version, tag it and alias it `candidate`. Returns the version."""
    info = log_planner_model(planner_dir, mode, input_example, limits=limits)
    all_tags = {**tags, **{f"{SCORE_PREFIX}{k}": f"{v:.6f}" for k, v in scores.items()}, "planner.mode": mode}
    # the tags (hundreds of scores) go in with the version: one call, not one round trip each
    version = str(mlflow.register_model(info.model_uri, model_name,
                                        tags={k: str(v)[:5000] for k, v in all_tags.items()}).version)
    MlflowClient().set_registered_model_alias(model_name, CANDIDATE, version)
    return version


def version_scores(client: MlflowClient, model_name: str, version: str) -> dict[str, float]:
    mv = client.get_model_version(model_name, version)
    out = {}
    for k, v in mv.tags.items():
        if k.startswith(SCORE_PREFIX):
            try:
                out[k[len(SCORE_PREFIX):]] = float(v)
            except ValueError:  # a tag edited by hand: not a number, which the gate refuses to compare
                out[k[len(SCORE_PREFIX):]] = float("nan")
    return out


def download_planner(model_name: str, version: str, dest: str | Path) -> tuple[Path, str]:
    """A registered version's planner directory and planning mode, downloaded to dest."""
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}", dst_path=str(dest)))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    pyfunc = mlmodel.get("flavors", {}).get("python_function", {})
    mode = (pyfunc.get("config") or pyfunc.get("model_config") or {}).get("mode")  # MLflow 3 writes "config"
    planner_dirs = [p.parent for p in local.rglob("config.json") if (p.parent / "model.safetensors").exists()]
    if not planner_dirs or mode is None:
        raise FileNotFoundError(f"models:/{model_name}/{version}: no planner weights or mode in {local}")
    return planner_dirs[0], mode
