"""Stage rl: hybrid RL from the SFT planners with the NAVSIM scorer as the reward -> models/rl/<variant>/.

DriveFine: GRPO on the generation expert + offline / online refinement RL. SpanVLA: GRPO on the flow expert
with negative and recovery rewards. Scenes are the train split's feature samples that have a metric cache.
Checkpoint selection (rl.validation_logs > 0): the last rl.validation_logs logs of the train split (by name)
are held out of RL; every rl.validate_every steps the greedy reward on them is measured and the planner
saved is the one with the best validation reward, the SFT policy (step 0) included. The test split is never
used. Metrics: mean reward (params.rl.reward) of the deterministic plan and of the sampled RL policy, before
and after, on the first rl.eval_scenes scenes (measured by the main process alone) - of the held-out
validation scenes when selection is on (RL never trained on them), else of the RL scenes; <variant>/
selected_step and <variant>/validation_reward_best.
Runs under `accelerate launch` like sft: every process trains, only the main one writes outputs and the
MLflow run."""

from __future__ import annotations

from pathlib import Path

from stages._common import open_main_run, save_trained
from stages._launch import launched_main
from stages.sft import mlflow_logger, publish

CHECKPOINTS = Path("data/checkpoints/rl")


def run(params) -> None:
    from drivefine_core.features.dataset import InMemoryFeatureDataset
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.models import Planner
    from drivefine_core.training.loop import make_accelerator
    from drivefine_core.training.reward import PairedScenes, ScorerReward
    from drivefine_core.training.rl import EVAL_MODES, mean_reward, sampled_reward, train_rl
    from drivefine_core.training.rl_select import split_by_log

    rl = params.rl
    acc = make_accelerator()
    is_main = acc.is_main_process
    with open_main_run("rl", params, {"rl": rl, "launch": params.launch}, is_main):
        train = params.ingest.split.train_name
        features = f"data/features/{train}"
        dataset = InMemoryFeatureDataset(features)
        scenes = PairedScenes(dataset, dataset.tokens, read_metric_caches(f"data/metric_cache/{train}"), limit=rl.max_samples)
        # the split train_rl makes (deterministic): before / after on the held-out scenes when there are some
        _, held_out = split_by_log(scenes, rl.validation_logs)
        evaluation = (held_out if len(held_out) else scenes)[: rl.eval_scenes]
        reward = ScorerReward(rl.reward)
        metrics: dict[str, float] = {"scenes": float(len(scenes)), "processes": float(acc.num_processes)}
        curves: dict[str, list[list[float]]] = {}

        def rewards(planner, variant: str, when: str) -> None:
            if is_main:
                metrics[f"{variant}/reward_{when}"] = mean_reward(planner, evaluation, EVAL_MODES[variant], reward)
                metrics[f"{variant}/sampled_reward_{when}"] = sampled_reward(planner, evaluation, variant, rl, reward)

        for variant in rl.variants:
            planner = Planner.load(Path("models/sft") / variant)
            rewards(planner, variant, "before")
            res = train_rl(planner, variant, scenes, rl, reward, accelerator=acc,
                           checkpoint_dir=CHECKPOINTS / variant, log_metrics=mlflow_logger)
            rewards(planner, variant, "after")
            metrics.update({
                f"{variant}/final_loss": res.final("loss"),
                f"{variant}/scenes_per_s": res.samples / res.seconds if res.seconds else 0.0,
            })
            if variant == "spanvla":
                metrics["spanvla/negatives_found"] = res.final("negatives_found")
            if rl.validation_logs:
                metrics[f"{variant}/selected_step"] = res.final("selected_step")
                metrics[f"{variant}/validation_reward_best"] = res.final("validation_reward_best")
                metrics["validation_scenes"] = res.final("validation_scenes")
            curves.update(res.curves(variant, ("loss", "reward", "validation_reward")))
            if is_main:
                save_trained("rl", planner, variant, metrics)
        if is_main:
            publish("rl", metrics, curves)


if __name__ == "__main__":
    launched_main(run)
