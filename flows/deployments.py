"""GPU routing for the retrain flow, and what the deployments in prefect.yaml need.

`retrain-routed` cuts the pipeline (dvc.yaml, graph order) into runs of consecutive stages that need the
same kind of machine. CPU runs go through the `retrain` flow here, as a subflow. GPU runs go either here
too (laptop default: no `gpu_deployment`) or to the `retrain/gpu-stages` deployment on the drivefine-gpu
pool via run_deployment, and this flow waits for them before going on.

Both workers see the same checkout (a shared workspace: a bind mount in compose, a ReadWriteMany volume on
Kubernetes, selected by the pull step of prefect.yaml), so dvc.lock and the stage outputs written on the
GPU worker are what the next CPU stage reads; DVC's repository lock keeps the two from writing at once.
Each `retrain` run also `dvc push`es its outputs, so the DVC remote holds every stage's results.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from drivefine_core.config import load_ops_params
from flows import dvc_graph, dvc_remote
from flows.retrain import StageResult, retrain

GPU_DEPLOYMENT = "retrain/gpu-stages"


def segments(order: list[str], gpu_stages: list[str]) -> list[tuple[bool, list[str]]]:
    """[(needs_gpu, [stage, ...]), ...]: consecutive stages of the same kind, in graph order."""
    return [(gpu, list(group)) for gpu, group in groupby(order, key=lambda s: s in gpu_stages)]


def _run_on_gpu_pool(deployment: str, stages: list[str], force: bool, timeout_s: float) -> list[StageResult]:
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={"repo_root": ".", "stages": stages, "force": force},
                         timeout=timeout_s)
    state = run.state
    if state is None or not state.is_completed():
        name = state.name if state else "no state"
        raise RuntimeError(f"GPU stages {stages} on deployment {deployment}: flow run {run.id} ended {name}")
    return [StageResult(s, "ran on gpu pool", 0.0) for s in stages]


@flow(name="retrain-routed", log_prints=True)
def retrain_routed(
    repo_root: str = ".",
    stages: list[str] | None = None,
    force: bool = False,
    gpu_stages: list[str] | None = None,
    gpu_deployment: str | None = None,
    configure_remote: bool = True,
) -> list[dict[str, Any]]:
    """The whole pipeline with GPU stages sent to the GPU pool.

    None arguments come from params.yaml (ops.routing); an empty `gpu_deployment` runs everything here.
    `configure_remote` checks and logs the S3 DVC remote (params ops.remote / DRIVEFINE_DVC_REMOTE_URL) the
    run pushes to; each retrain hands it to DVC in memory, no config file is written.
    """
    logger = get_run_logger()
    ops = load_ops_params(repo_root)
    routing = ops.routing
    if configure_remote:
        remote = dvc_remote.run_remote(ops.remote)
        logger.info("DVC remote: %s", f"{remote.name} -> {remote.url}" if remote else "repository default")
    gpu = routing.gpu_stages if gpu_stages is None else gpu_stages
    target = routing.gpu_deployment if gpu_deployment is None else gpu_deployment
    selected = dvc_graph.select_stages(Path(repo_root).resolve(), stages)
    results: list[StageResult] = []
    for needs_gpu, part in segments(selected, gpu):
        if needs_gpu and target:
            logger.info("stages %s -> deployment %s (GPU pool)", part, target)
            results += _run_on_gpu_pool(target, part, force, routing.gpu_timeout_s)
        else:
            logger.info("stages %s -> here", part)
            results += retrain(repo_root=repo_root, stages=part, force=force)
    return [{"stage": r.stage, "status": r.status, "seconds": r.seconds} for r in results]
