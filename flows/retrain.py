"""The retrain flow: every DVC stage of dvc.yaml, in graph order, each as a Prefect task.

DVC decides what is up to date; Prefect adds retries, the grouping MLflow run, the summary artifact.
New stages in dvc.yaml are picked up from the graph without editing this file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context

from drivefine_core.config import load_params
from drivefine_core.tracking.runs import (
    PARENT_RUN_ENV,
    configure,
    context_tags,
    fail_abandoned_runs,
    metric_key,
    process_tags,
)
from flows import dvc_deps, dvc_graph
from flows.dvc_remote import RemoteConfig, push, run_remote
from flows.process_guard import guard_children
from stages._common import EXIT_TRANSIENT


@dataclass
class StageResult:
    stage: str
    status: str  # "ran" | "up to date" | "failed"
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""


def is_transient(task, task_run, state) -> bool:
    """Retry only stages that exited with EXIT_TRANSIENT (an endpoint that did not answer), not bugs or bad data."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - anything but a StageFailed is not a stage's transient failure
        return isinstance(exc, dvc_graph.StageFailed) and exc.exit_code == EXIT_TRANSIENT
    return False


@task(name="dvc-stage", retry_condition_fn=is_transient)
def run_stage(repo_root: str, stage: str, force: bool) -> StageResult:
    logger = get_run_logger()
    start = time.perf_counter()
    ran = dvc_graph.reproduce(Path(repo_root), stage, force=force)
    seconds = time.perf_counter() - start
    status = "ran" if ran else "up to date"
    logger.info("stage %s: %s in %.1f s", stage, status, seconds)
    return StageResult(stage, status, seconds, dvc_graph.stage_metrics(Path(repo_root), stage))


@task(name="dvc-push")
def push_outputs(repo_root: str, remote: RemoteConfig | None) -> int:
    return push(repo_root, remote=remote)


def promotion_lines(repo_root: Path, results: list[StageResult]) -> list[str]:
    """The promotion decision, when the register stage ran in this flow run."""
    path = repo_root / "data/registry/decision.json"
    if not any(r.stage == "register" and r.status == "ran" for r in results) or not path.exists():
        return []
    d = json.loads(path.read_text())
    verdict = "promoted to **champion**" if d["promote"] else "**not promoted**"
    return ["", "## Promotion", "", f"{d['model']} v{d['version']} ({d['variant']}) {verdict}: {d['reason']}"]


def summary_markdown(results: list[StageResult], total_s: float, pushed: int | None,
                     extra: list[str] | None = None) -> str:
    lines = ["# drivefine retrain", "", f"Total {total_s:.1f} s.", "",
             "| stage | status | seconds | key metrics |", "|---|---|---|---|"]
    for r in results:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(r.metrics.items())[:8]) or "-"
        status = r.status if not r.error else f"failed: {r.error[:120]}"
        lines.append(f"| {r.stage} | {status} | {r.seconds:.1f} | {shown} |")
    ran = [r.stage for r in results if r.status == "ran"]
    lines += ["", f"Ran: {', '.join(ran) or 'nothing (all up to date)'}."]
    if pushed is not None:
        lines.append(f"DVC push: {pushed} file(s) sent to the default remote.")
    return "\n".join(lines + (extra or []))


@flow(name="retrain", log_prints=True)
def retrain(repo_root: str = ".", stages: list[str] | None = None, force: bool = False) -> list[StageResult]:
    """Run the pipeline. `stages` limits the run to those stages (in graph order)."""
    guard_children()  # stage processes end with this flow's process, however it ends (a no-op under the CLI)
    root = Path(repo_root).resolve()
    params = load_params(root / "params.yaml")  # a bad params.yaml fails here, before any stage
    stale = dvc_deps.data_problems(root)  # data params changed, dvc.yaml not regenerated: DVC would miss changes
    if stale:
        raise ValueError("dvc.yaml's data deps do not follow params.yaml; run `python -m flows.dvc_deps --write`:\n  "
                         + "\n  ".join(stale))
    selected = dvc_graph.select_stages(root, stages)
    # An S3 remote named by params (ops.remote.url) or DRIVEFINE_DVC_REMOTE_URL replaces the local default
    # for this run's push only: DVC gets it in memory, so a failed or killed run leaves no config behind.
    remote = run_remote(params.ops.remote)
    if remote is not None:
        print(f"DVC remote: {remote.name} -> {remote.url}")
    step = run_stage.with_options(retries=params.run.stage_retries,
                                  retry_delay_seconds=params.run.retry_delay_s)

    cwd = os.getcwd()
    os.chdir(root)  # stages and the sqlite default URI are relative to the repository root
    configure(params.tracking.default_tracking_uri, params.tracking.experiment, params.tracking)
    abandoned = fail_abandoned_runs(params.tracking.experiment)  # left RUNNING by a flow killed before
    if abandoned:
        print(f"marked FAILED {len(abandoned)} MLflow run(s) left RUNNING by a process that ended: {', '.join(abandoned)}")
    start = time.perf_counter()
    results: list[StageResult] = []
    pushed = None
    tags = {**context_tags(root), **process_tags(), "prefect.flow_run_id": str(get_run_context().flow_run.id)}
    try:
        with mlflow.start_run(run_name="retrain", tags=tags) as parent:
            os.environ[PARENT_RUN_ENV] = parent.info.run_id
            try:
                for stage in selected:
                    try:
                        results.append(step(str(root), stage, force))
                    except Exception as exc:
                        results.append(StageResult(stage, "failed", 0.0, error=str(exc)))
                        raise
                    for key, value in results[-1].metrics.items():
                        mlflow.log_metric(metric_key(f"{stage}.{key}"), value)
                if params.run.push_to_remote and any(r.status == "ran" for r in results):
                    pushed = push_outputs(str(root), remote)
            finally:
                report = summary_markdown(results, time.perf_counter() - start, pushed,
                                          promotion_lines(root, results))
                mlflow.log_text(report, "retrain_summary.md")
                mlflow.set_tag("stages.ran", ",".join(r.stage for r in results if r.status == "ran"))
                create_markdown_artifact(report, key="retrain-summary", description="what ran, what was skipped")
                print(report)
                os.environ.pop(PARENT_RUN_ENV, None)
    finally:
        os.chdir(cwd)
    return results
