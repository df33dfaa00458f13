"""Scoring a registered planner version on the current test split (the gate's comparison, the
evaluate-champion flow)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from drivefine_core.evaluation.agents import FeatureIndex, planner_agent
from drivefine_core.evaluation.ladder import score_table
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.models.planner import Planner
from drivefine_core.tracking.lineage import manifests_digest
from drivefine_core.tracking.registry import download_planner, version_scores

SPLIT_TAG = "eval.split_digest"


def split_digest(split: str, root: str | Path = "data") -> str:
    """Identity of a test split: the manifests of its metric caches and features (each names every part)."""
    root = Path(root)
    return manifests_digest(root / "metric_cache" / split / "manifest.json", root / "features" / split / "_manifest.json")


def score_version(model: str, version: str, split: str, metrics: MetricsParams, batch_size: int = 32,
                  seed: int = 0, root: str | Path = "data") -> dict[str, float]:
    """Download a registered planner and score it (v1 + v2 split means) on the split's scenes."""
    root = Path(root)
    with tempfile.TemporaryDirectory() as tmp:
        planner_dir, mode = download_planner(model, version, tmp)
        features = FeatureIndex(str(root / "features" / split))
        caches = [c for c in read_metric_caches(root / "metric_cache" / split) if c.token in features]
        agent = planner_agent(Planner.load(planner_dir), mode, features, batch_size, seed)
        table, _ = score_table(caches, {"version": agent}, metrics)
    return {k: float(v) for k, v in table.loc["version"].items()}


def scores_on_split(client: MlflowClient, model: str, version: str, split: str, metrics: MetricsParams,
                    batch_size: int = 32, seed: int = 0) -> tuple[dict[str, float], bool]:
    """(scores, re-scored?): the version's recorded scores if they were measured on this very split and
    are all finite numbers, otherwise scores measured now."""
    digest = split_digest(split)
    if client.get_model_version(model, version).tags.get(SPLIT_TAG) == digest:
        recorded = version_scores(client, model, version)
        if all(math.isfinite(v) for v in recorded.values()):
            return recorded, False
    return score_version(model, version, split, metrics, batch_size, seed), True
