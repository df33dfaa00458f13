"""The evaluate-champion flow: score the registry's champion on the current test split (after new data
arrived, or on a schedule), log the scores to MLflow and record them on the champion's version."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from drivefine_core.config import load_params
from drivefine_core.evaluation.champion import SPLIT_TAG, score_version, split_digest
from drivefine_core.tracking.promotion import CHAMPION, current_champion
from drivefine_core.tracking.runs import configure, metric_key
from flows.retrain import retrain

DATA_STAGES = ["check_env", "generate", "ingest", "features", "metric_cache"]


@flow(name="evaluate-champion", log_prints=True)
def evaluate_champion(repo_root: str = ".", refresh_data: bool = True) -> dict[str, float]:
    """refresh_data: first bring the data stages up to date (DVC skips what did not change)."""
    root = Path(repo_root).resolve()
    params = load_params(root / "params.yaml")
    if refresh_data:
        retrain(repo_root=str(root), stages=DATA_STAGES)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        configure(params.tracking.default_tracking_uri, params.tracking.experiment, params.tracking)
        client, name, split = MlflowClient(), params.tracking.registered_model, params.evaluate.split
        version = current_champion(client, name)
        if version is None:
            raise LookupError(f"registered model {name!r} has no {CHAMPION!r} alias yet: run `drivefine retrain` first")
        scores = score_version(name, version, split, params.metrics, params.evaluate.batch_size, params.evaluate.seed)
        digest = split_digest(split)
        with mlflow.start_run(run_name="evaluate-champion", tags={"champion.version": version, SPLIT_TAG: digest}):
            mlflow.log_metrics({metric_key(k): v for k, v in scores.items()})
        client.set_model_version_tag(name, version, "last_evaluated.split_digest", digest)
        client.set_model_version_tag(name, version, f"last_evaluated.{params.promotion.primary_metric}",
                                     f"{scores[params.promotion.primary_metric]:.6f}")
    finally:
        os.chdir(cwd)
    lines = ["# champion evaluation", "", f"{name} v{version} on the `{split}` split ({digest[:12]}):", "",
             "| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in sorted(scores.items())]
    create_markdown_artifact("\n".join(lines), key="champion-evaluation")
    print("\n".join(lines))
    return scores
