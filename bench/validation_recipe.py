"""Recipe choices on the validation logs: train one SFT phase on a ladder clone's data and score it on the
held-out train logs (rl.validation_logs), never on the test split. How the flow expert's recipe, DriveFine's
step count and the AR VLM's step count were chosen (docs/ladder-history.md).

    # the AR VLM (its weights saved to OUT), then a flow expert on it with model overrides:
    .venv/bin/python bench/validation_recipe.py --data LADDER_CLONE --phase ar --seed 0 --out /tmp/ar0
    .venv/bin/python bench/validation_recipe.py --data LADDER_CLONE --phase flow --ar /tmp/ar0 \
        --model '{"flow_state_token": true}' --steps 6000 --out /tmp/flow0
    # DriveFine (generation + refinement expert); --load scores a saved planner without training:
    .venv/bin/python bench/validation_recipe.py --data LADDER_CLONE --phase drivefine --steps 3000 --out /tmp/df0
    .venv/bin/python bench/validation_recipe.py --data LADDER_CLONE --phase drivefine --load LADDER_CLONE/models/sft/drivefine
    # --camera-ablation: also plan every scene with another validation log's camera (the evaluate stage's ablation)
    .venv/bin/python bench/validation_recipe.py --data LADDER_CLONE --phase flow --load LADDER_CLONE/models/sft/spanvla \
        --camera-ablation

LADDER_CLONE is a clone whose data stages ran with bench/ladder_params.yaml (bench/ladder.py --dest leaves one).
The flow phase trains the history-initialised expert only; the drivefine phase scores mdm and mdm+refine. Prints
the validation PDMS over all held-out scenes and over the curated ones (constant velocity < 0.8, human >= 0.8),
v1 sub-scores, ADE, and the ego-MLP, constant velocity and human on the same scenes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

print = functools.partial(print, flush=True)  # progress shows even when piped
SUBS = ("v1/nc", "v1/dac", "v1/ttc", "v1/c", "v1/ep")


def validate(planner, mode: str, features: str, held: list[str], caches: list, baselines,
             camera_ablation: bool = False) -> None:
    from drivefine_core.evaluation.agents import shuffled_images
    from drivefine_core.features.dataset import InMemoryFeatureDataset
    from drivefine_core.metrics.baselines import EgoStatusMLP, constant_velocity_agent, human_agent
    from drivefine_core.models import PlannerBatch
    from drivefine_core.training.reward import PairedScenes, ScorerReward, collate_scenes

    ds = InMemoryFeatureDataset(features, logs=held)
    scenes = PairedScenes(ds, ds.tokens, [c for c in caches if c.log_name in held])
    reward = ScorerReward("v1/pdms")
    val = scenes.caches()
    cv = reward(val, constant_velocity_agent(val)[:, None])[:, 0]
    human = reward(val, human_agent(val)[:, None])[:, 0]
    curated = (cv < 0.8) & (human >= 0.8)
    mlp = EgoStatusMLP(baselines)
    mlp.fit([c for c in caches if c.log_name not in held])
    mlp_r = reward(val, mlp(val)[:, None])[:, 0]
    planner.eval()

    def plan_and_score(batch, cc) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        poses = planner.plan(batch, mode, seed=0).poses.numpy().astype(np.float64)
        scores = reward.scores(cc, poses[:, None])
        for c in cc:
            c.forget("index")
        return poses, scores

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("v1/pdms", "ade", *SUBS)}
    kept = []  # the collated batches, for the camera ablation's second pass
    with torch.no_grad():
        for start in range(0, len(scenes), 32):
            samples, cc = collate_scenes(list(scenes[start : start + 32]))
            batch = PlannerBatch.of(samples, "cpu")
            if camera_ablation:
                kept.append((batch, cc))
            poses, scores = plan_and_score(batch, cc)
            for k in ("v1/pdms", *SUBS):
                parts[k].append(np.nan_to_num(scores[k][:, 0]) if k == "v1/pdms" else scores[k][:, 0])
            parts["ade"].append(np.linalg.norm(poses[..., :2] - batch["target"].numpy()[..., :2], axis=-1).mean(-1))
        # the evaluate stage's camera ablation: every scene planned with the camera of a scene of another log
        source = shuffled_images(val) if camera_ablation else {}
        images = {c.token: image for batch, cc in kept for c, image in zip(cc, batch.image)}
        other_camera: list[np.ndarray] = []
        for batch, cc in kept:
            moved = dataclasses.replace(batch, image=torch.stack([images[source[c.token]] for c in cc]))
            other_camera.append(np.nan_to_num(plan_and_score(moved, cc)[1]["v1/pdms"][:, 0]))
    r = {k: np.concatenate(v) for k, v in parts.items()}
    if other_camera:
        r["other_camera"] = np.concatenate(other_camera)
    print(f"{mode}: validation {len(val)} scenes ({int(curated.sum())} curated)")
    for name, sel in (("all", np.ones(len(val), dtype=bool)), ("curated", curated)):
        subs = " ".join(f"{k[3:]} {100 * np.nanmean(r[k][sel]):.1f}" for k in SUBS)
        ablation = f", another log's camera {100 * r['other_camera'][sel].mean():.1f}" if "other_camera" in r else ""
        print(f"  {name:8s} PDMS {100 * r['v1/pdms'][sel].mean():.1f}{ablation} ({subs}) ADE "
              f"{r['ade'][sel].mean():.2f} m | ego-MLP {100 * mlp_r[sel].mean():.1f}, constant velocity "
              f"{100 * cv[sel].mean():.1f}, human {100 * human[sel].mean():.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a ladder clone whose data stages ran")
    ap.add_argument("--phase", choices=["ar", "flow", "drivefine"], required=True)
    ap.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    ap.add_argument("--steps", type=int, default=0, help="optimiser steps (0: the clone's params)")
    ap.add_argument("--ar", type=Path, help="flow phase: the saved SpanVLA planner whose AR VLM it reads")
    ap.add_argument("--model", default="{}", help="JSON overrides of the model params (training only)")
    ap.add_argument("--out", type=Path, help="where the trained planner is saved")
    ap.add_argument("--load", type=Path, help="score this saved planner (a directory Planner.load reads); no training")
    ap.add_argument("--camera-ablation", action="store_true",
                    help="also score every scene with the camera of a scene of another validation log")
    args = ap.parse_args()
    if (args.out is None) == (args.load is None):
        ap.error("give --out (train, then score) or --load (score a saved planner)")
    if args.load is not None and json.loads(args.model):
        ap.error("--model applies to training; a planner given by --load keeps the params it was saved with")
    if args.phase == "flow" and args.ar is None and args.load is None:
        ap.error("--phase flow needs --ar (a planner saved by --phase ar)")
    ar_dir = args.ar.resolve() if args.ar else None
    out, load = (args.out.resolve() if args.out else None), (args.load.resolve() if args.load else None)
    os.chdir(args.data)

    from drivefine_core.config import load_params
    from drivefine_core.features.dataset import InMemoryFeatureDataset
    from drivefine_core.features.row_groups import store_logs
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.models import Planner, SpanVLAPlanner
    from drivefine_core.models.modes import modes_of
    from drivefine_core.training.bev_targets import WithBEV
    from drivefine_core.training.sft import PHASES, train_phase
    from drivefine_core.training.splits import last_logs

    params = load_params("params.yaml")
    train = params.ingest.split.train_name
    features = f"data/features/{train}"
    logs = store_logs(features)
    held = last_logs(logs, params.rl.validation_logs, f"the feature store {features}")
    caches = read_metric_caches(f"data/metric_cache/{train}")
    model = params.model.model_copy(update=json.loads(args.model))
    family = next(f for f, phases in PHASES.items() if args.phase in phases)
    # a SpanVLA phase trains one mode (the flow phase the history-initialised expert only)
    modes = modes_of(family) if family == "drivefine" else (args.phase,)
    if load is not None:
        planner = Planner.load(load)
        for mode in modes:
            validate(planner, mode, features, held, caches, params.metrics.baselines, args.camera_ablation)
        return
    dataset = InMemoryFeatureDataset(features, logs=[log for log in logs if log not in held])
    if params.sft.bev_weight > 0:
        dataset = WithBEV(dataset, dataset.tokens, caches, model)
    phase = getattr(params.sft, args.phase)
    phase = phase.model_copy(update={"seed": args.seed, **({"steps": args.steps} if args.steps else {})})
    sft = params.sft.model_copy(update={args.phase: phase, "train_flow_noise": False})
    torch.manual_seed(args.seed)
    planner = Planner.build(family, model)
    if ar_dir is not None:
        assert isinstance(planner, SpanVLAPlanner)
        planner.ar.load_state_dict(Planner.load(ar_dir).ar.state_dict())
    start = time.perf_counter()
    res = train_phase(planner, args.phase, dataset, sft)
    print(f"{args.phase}: {phase.steps} steps in {time.perf_counter() - start:.0f} s, final loss {res.final('loss'):.4g}")
    assert out is not None  # --out and --load exclude each other
    planner.save(out)
    for mode in modes:
        validate(planner, mode, features, held, caches, params.metrics.baselines, args.camera_ablation)


if __name__ == "__main__":
    main()
