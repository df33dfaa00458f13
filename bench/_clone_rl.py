"""What the RL benches read from a ladder clone (the cwd): its params, the RL scenes of the train split split
into those RL trains on and the held-out validation logs (as the rl stage splits them), the SFT DriveFine planner
and the reward."""

from __future__ import annotations


def clone_rl():
    from drivefine_core.config import load_params
    from drivefine_core.features.dataset import InMemoryFeatureDataset
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.models import DriveFinePlanner, Planner
    from drivefine_core.training.reward import PairedScenes, ScorerReward
    from drivefine_core.training.rl_select import split_by_log

    params = load_params("params.yaml")
    train = params.ingest.split.train_name
    ds = InMemoryFeatureDataset(f"data/features/{train}")
    scenes, held = split_by_log(PairedScenes(ds, ds.tokens, read_metric_caches(f"data/metric_cache/{train}")),
                                params.rl.validation_logs)
    planner = Planner.load("models/sft/drivefine")
    if not isinstance(planner, DriveFinePlanner):
        raise SystemExit("models/sft/drivefine does not hold a DriveFine planner")
    return params, scenes, held, planner, ScorerReward(params.rl.reward)
