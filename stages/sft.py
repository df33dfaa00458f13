"""Stage sft: train each planner family on the train split's features and save it under models/sft/<variant>/.

DriveFine: generation + refinement experts in one run; SpanVLA: the AR VLM, then the flow expert on it.
The vision towers also learn a BEV raster of each scene (drivable area, route, agents) drawn from its metric
cache, when sft.bev_weight > 0.
Runs under `accelerate launch` with launch.processes processes (stages/_common.main); every process trains,
only the main one writes outputs, checkpoints and the MLflow run.
The logs RL validates on (rl.validation_logs, the last ones by name) are left out here too
(sft.hold_out_validation_logs), so that no training phase has seen them.
Resumable: checkpoints go to data/checkpoints/sft/ (outside the stage's outs, so DVC does not delete
them before a rerun) and are removed once a variant is saved."""

from __future__ import annotations

from pathlib import Path

from stages._common import open_main_run, save_trained, write_json
from stages._launch import launched_main

CHECKPOINTS = Path("data/checkpoints/sft")


def mlflow_logger(d: dict[str, float], step: int) -> None:
    import mlflow

    from drivefine_core.tracking.runs import metric_key

    mlflow.log_metrics({metric_key(k): float(v) for k, v in d.items()}, step=step)


def publish(stage: str, metrics: dict[str, float], curves: dict[str, list[list[float]]]) -> None:
    """What a training stage leaves: metrics and curves JSON (for DVC and the report), MLflow metrics,
    and its planners as MLflow artifacts."""
    import mlflow

    from drivefine_core.tracking.runs import metric_key

    write_json(f"metrics/{stage}.json", metrics)
    write_json(f"metrics/{stage}_curves.json", curves)
    mlflow.log_metrics({metric_key(k): v for k, v in metrics.items()})
    mlflow.log_artifacts(f"models/{stage}", "planners")


def run(params) -> None:
    import torch

    from drivefine_core.features.dataset import InMemoryFeatureDataset
    from drivefine_core.features.row_groups import store_logs
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.models import Planner
    from drivefine_core.training.bev_targets import WithBEV
    from drivefine_core.training.loop import make_accelerator
    from drivefine_core.training.sft import train_sft
    from drivefine_core.training.splits import last_logs

    sft = params.sft
    acc = make_accelerator()
    is_main = acc.is_main_process
    with open_main_run("sft", params, {"sft": sft, "model": params.model, "launch": params.launch}, is_main):
        train = params.ingest.split.train_name
        features = f"data/features/{train}"
        logs = store_logs(features)
        held = last_logs(logs, params.rl.validation_logs, f"the feature store {features}") \
            if sft.hold_out_validation_logs else []
        dataset = InMemoryFeatureDataset(features, logs=[log for log in logs if log not in held])
        if len(dataset) == 0:
            raise ValueError(f"{features}: the feature store holds no training sample")
        if sft.bev_weight > 0:  # the vision towers' auxiliary BEV targets, drawn from the metric caches
            # the scenes' fields only (nothing is scored here); the caches are dropped once the rasters are drawn
            cache_dir = f"data/metric_cache/{train}"
            dataset = WithBEV(dataset, dataset.tokens, read_metric_caches(cache_dir, scorer_tables=False), params.model)
        metrics: dict[str, float] = {"train_samples": float(len(dataset)), "processes": float(acc.num_processes),
                                     "validation_logs_held_out": float(len(held))}
        curves: dict[str, list[list[float]]] = {}
        for variant in sft.variants:
            torch.manual_seed(params.run.seed)  # initial weights (the same in every process)
            planner = Planner.build(variant, params.model)
            results = train_sft(planner, variant, dataset, sft, accelerator=acc, checkpoint_root=CHECKPOINTS,
                                log_metrics=mlflow_logger)
            for phase, res in results.items():
                curves.update(res.curves(f"{variant}/{phase}"))
                for key in [k for k in res.history[-1] if k.startswith("loss")]:
                    metrics[f"{variant}/{phase}/final_{key}"] = res.final(key)
                metrics[f"{variant}/{phase}/samples_per_s"] = res.samples / res.seconds if res.seconds else 0.0
            if is_main:
                save_trained("sft", planner, variant, metrics)
        if is_main:
            publish("sft", metrics, curves)


if __name__ == "__main__":
    launched_main(run)
