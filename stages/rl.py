"""Stage rl: hybrid RL from the SFT planners with the NAVSIM scorer as the reward -> models/rl/<variant>/.

DriveFine: GRPO on the generation expert + offline / online refinement RL. SpanVLA: GRPO on the flow expert
with negative and recovery rewards. Scenes are the train split's feature samples that have a metric cache.
Metrics: mean reward (params.rl.reward) of the deterministic plan and of the sampled RL policy, before and
after, on the first rl.eval_scenes scenes."""

from __future__ import annotations

import shutil
from pathlib import Path


from drivefine_core.features.dataset import InMemoryFeatureDataset
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.models import Planner
from drivefine_core.training.reward import PairedScenes, ScorerReward
from drivefine_core.training.rl import EVAL_MODES, mean_reward, sampled_reward, train_rl
from stages._common import main, open_run
from stages.sft import mlflow_logger, publish

CHECKPOINTS = Path("data/checkpoints/rl")


def run(params) -> None:
    rl = params.rl
    with open_run("rl", params, {"rl": rl}):
        train = params.ingest.split.train_name
        features = f"data/features/{train}"
        dataset = InMemoryFeatureDataset(features)
        scenes = PairedScenes(dataset, dataset.tokens, read_metric_caches(f"data/metric_cache/{train}"), limit=rl.max_samples)
        evaluation = scenes[: rl.eval_scenes]
        reward = ScorerReward(rl.reward)
        metrics: dict[str, float] = {"scenes": float(len(scenes))}
        curves: dict[str, list[list[float]]] = {}
        for variant in rl.variants:
            source = Path("models/sft") / variant
            planner = Planner.load(source)
            mode = EVAL_MODES[variant]
            before = mean_reward(planner, evaluation, mode, reward)
            before_s = sampled_reward(planner, evaluation, variant, rl, reward)
            res = train_rl(planner, variant, scenes, rl, reward, checkpoint_dir=CHECKPOINTS / variant,
                           log_metrics=mlflow_logger)
            planner.cpu().save(Path("models/rl") / variant)
            metrics.update({
                f"{variant}/reward_before": before, f"{variant}/reward_after": mean_reward(planner, evaluation, mode, reward),
                f"{variant}/sampled_reward_before": before_s,
                f"{variant}/sampled_reward_after": sampled_reward(planner, evaluation, variant, rl, reward),
                f"{variant}/final_loss": res.final("loss"),
                f"{variant}/scenes_per_s": res.samples / res.seconds if res.seconds else 0.0,
            })
            if variant == "spanvla":
                metrics["spanvla/negatives_found"] = res.final("negatives_found")
            curves.update(res.curves(variant))
            shutil.rmtree(CHECKPOINTS / variant, ignore_errors=True)
            print(f"rl {variant}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(variant)))
        publish("rl", metrics, curves)


if __name__ == "__main__":
    main(run)
