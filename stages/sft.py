"""Stage sft: train each planner family on the train split's features and save it under models/sft/<variant>/.

DriveFine: generation + refinement experts in one run; SpanVLA: the AR VLM, then the flow expert on it.
The vision towers also learn a BEV raster of each scene (drivable area, route, agents) drawn from its metric
cache, when sft.bev_weight > 0.
Resumable: checkpoints go to data/checkpoints/sft/ (outside the stage's outs, so DVC does not delete
them before a rerun) and are removed once a variant is saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import torch

from drivefine_core.features.dataset import InMemoryFeatureDataset
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.models import Planner
from drivefine_core.training.bev_targets import WithBEV
from drivefine_core.training.sft import train_sft
from drivefine_core.tracking.runs import metric_key
from stages._common import main, open_run, write_json

CHECKPOINTS = Path("data/checkpoints/sft")


def mlflow_logger(d: dict[str, float], step: int) -> None:
    mlflow.log_metrics({metric_key(k): float(v) for k, v in d.items()}, step=step)


def publish(stage: str, metrics: dict[str, float], curves: dict[str, list[list[float]]]) -> None:
    """What a training stage leaves: metrics and curves JSON (for DVC and the report), MLflow metrics,
    and its planners as MLflow artifacts."""
    write_json(f"metrics/{stage}.json", metrics)
    write_json(f"metrics/{stage}_curves.json", curves)
    mlflow.log_metrics({metric_key(k): v for k, v in metrics.items()})
    mlflow.log_artifacts(f"models/{stage}", "planners")


def run(params) -> None:
    sft = params.sft
    with open_run("sft", params, {"sft": sft, "model": params.model}):
        train = params.ingest.split.train_name
        features = f"data/features/{train}"
        dataset = InMemoryFeatureDataset(features)
        if len(dataset) == 0:
            raise ValueError(f"{features}: the feature store holds no training sample")
        if sft.bev_weight > 0:  # the vision towers' auxiliary BEV targets, drawn from the metric caches
            dataset = WithBEV(dataset, dataset.tokens, read_metric_caches(f"data/metric_cache/{train}"), params.model)
        metrics: dict[str, float] = {"train_samples": float(len(dataset))}
        curves: dict[str, list[list[float]]] = {}
        for variant in sft.variants:
            torch.manual_seed(params.run.seed)  # initial weights
            planner = Planner(params.model)
            results = train_sft(planner, variant, dataset, sft, checkpoint_root=CHECKPOINTS,
                                log_metrics=mlflow_logger)
            planner.cpu().save(Path("models/sft") / variant)
            for phase, res in results.items():
                curves.update(res.curves(f"{variant}/{phase}"))
                for key in [k for k in res.history[-1] if k.startswith("loss")]:
                    metrics[f"{variant}/{phase}/final_{key}"] = res.final(key)
                metrics[f"{variant}/{phase}/samples_per_s"] = res.samples / res.seconds if res.seconds else 0.0
            shutil.rmtree(CHECKPOINTS / variant, ignore_errors=True)
            print(f"sft {variant}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(variant)))
        publish("sft", metrics, curves)


if __name__ == "__main__":
    main(run)
