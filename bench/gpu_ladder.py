"""The ladder at a larger size on one GPU, in one process and a fixed time: SFT, RL and the evaluate stage's
test-split table (every planning mode, the baselines, the shuffled-camera ablation, the curated split) from the
data of a CPU ladder clone, with a bigger model and batch.

    python bench/gpu_ladder.py --data LADDER_CLONE [--seed 0] [--budget-s 420] [--json OUT.json]
    python bench/gpu_ladder.py --data LADDER_CLONE --device cpu --small --budget-s 120   # the code path (tests)

LADDER_CLONE is a folder holding the clone's params.yaml (the ladder's merged params), data/features/<split> and
data/metric_cache/<split> (bench/ladder.py --dest leaves one; a copy of those paths is enough). Metric caches
that are not there are built first from data/ingest/scenes and the maps (caches are large; scenes and maps are
not). The script imports no Prefect, DVC or MLflow, so it runs on a bare GPU machine.

Time: each SFT phase is timed for a few steps first; if the ladder's step counts (scaled by the batch) do not
fit the SFT share of the budget, every phase is shortened by the same factor, which the output states. RL runs
the ladder's step counts when the time left allows, else RL is skipped and said so. The test split only reports.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, where it is not installed
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ladder.py: the table and the rungs

print = functools.partial(print, flush=True)  # progress shows even when piped

# larger than the CPU ladder (width 128, depth 4, vision 64 x 2, flow 48): about 4x its parameters
LARGER = dict(width=256, depth=6, heads=8, vision_width=128, vision_depth=3, flow_width=96)
SMALL = dict(width=32, depth=2, heads=2, vision_width=16, vision_depth=1, flow_width=16, mdm_steps=4,
             refine_draft_steps=2)
PROBE_STEPS = 8  # steps timed per SFT phase


class Clock:
    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_seconds(family: str, phase: str, model, dataset, sft, acc, refine: bool) -> float:
    """Median seconds per optimiser step of one SFT phase on a throwaway planner, the first 2 steps left out."""
    from drivefine_core.models import Planner
    from drivefine_core.training.sft import train_phase

    stamps: list[float] = []

    def on_step(_: int) -> None:
        sync()
        stamps.append(time.perf_counter())

    opt = getattr(sft, phase).model_copy(update={"steps": 3 + PROBE_STEPS, "warmup_steps": 0})
    # refine: every step trains both experts (the refinement phase's cost); else the generator alone
    p = sft.model_copy(update={phase: opt, "refine_start": 0.0 if refine else 0.99})
    train_phase(Planner.build(family, model), phase, dataset, p, accelerator=acc, on_step=on_step)
    return float(np.median(np.diff(stamps[2:])))


def recipe(params, batch: int, seed: int, precision: str, small: bool):
    """(sft, rl) params: the ladder's lr; its steps at its batch give the samples, at least half its steps."""
    def at_batch(p):
        return p.model_copy(update={"batch_size": batch, "seed": seed, "mixed_precision": precision,
                                    "steps": max(p.steps // 2, p.steps * p.batch_size // batch)})

    sft = params.sft.model_copy(update={ph: at_batch(getattr(params.sft, ph)) for ph in ("drivefine", "ar", "flow")})
    rl = params.rl.model_copy(update={"optim": params.rl.optim.model_copy(update={"seed": seed,
                                                                                   "mixed_precision": precision})})
    if small:
        rl = rl.model_copy(update={"variant_optim": {v: {**rl.variant_optim.get(v, {}), "steps": 4}  # type: ignore[call-overload]
                                                     for v in ("drivefine", "spanvla")}, "validate_every": 2,
                                   "validation_scenes": 8})
    return sft, rl


def timings(model, dataset, sft, acc) -> dict[str, float]:
    """Seconds per step of every SFT phase (DriveFine's generation-only and refinement steps apart)."""
    return {
        "drivefine/gen": step_seconds("drivefine", "drivefine", model, dataset, sft, acc, refine=False),
        "drivefine/refine": step_seconds("drivefine", "drivefine", model, dataset, sft, acc, refine=True),
        "ar": step_seconds("spanvla", "ar", model, dataset, sft, acc, refine=False),
        # the flow phase reads a VLM: an untrained one costs the same
        "flow": step_seconds("spanvla", "flow", model, dataset, sft, acc, refine=False),
    }


def scaled_sft(sft, factor: float):
    """Every phase's steps (and warm-up) times `factor`, at least 20 steps."""
    update = {}
    for phase in ("drivefine", "ar", "flow"):
        p = getattr(sft, phase)
        update[phase] = p.model_copy(update={"steps": max(20, int(p.steps * factor)),
                                             "warmup_steps": int(p.warmup_steps * min(factor, 1.0))})
    return sft.model_copy(update=update)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a ladder clone (params.yaml, data/features, data/metric_cache)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=420.0, help="wall-clock seconds for the whole run")
    ap.add_argument("--batch-size", type=int, default=64, help="SFT batch (the CPU ladder's is 16)")
    ap.add_argument("--model", default="{}", help="JSON overrides of the model params on top of the larger size")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu with --small (tests)")
    ap.add_argument("--small", action="store_true", help="a tiny model and few steps: the code path, not the numbers")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="scoring processes")
    ap.add_argument("--maps", default="data/synthetic/maps", help="maps root (relative to --data) for building "
                    "metric caches that are not there")
    ap.add_argument("--json", type=Path, help="also write the scores (evaluate.json's keys) here")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_ladder: no CUDA device here; run it on a GPU machine, or `--device cpu --small`", file=sys.stderr)
        return 2
    out_json = args.json.resolve() if args.json else None
    clock = Clock(args.budget_s)
    os.chdir(args.data)

    import ladder

    from drivefine_core.config import load_params
    from drivefine_core.data.scenes_io import read_scenes
    from drivefine_core.evaluation.agents import FeatureIndex, baseline_agents, planner_agent, shuffled_images
    from drivefine_core.evaluation.curation import curated_tokens, means_over
    from drivefine_core.evaluation.ladder import SUMMARY_METRICS, flat_scores, score_table
    from drivefine_core.executor.core import make_executor
    from drivefine_core.executor.params import ExecutorParams
    from drivefine_core.features.dataset import InMemoryFeatureDataset
    from drivefine_core.features.row_groups import store_logs
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.metrics.cache_stage import build_metric_cache_dir
    from drivefine_core.models import Planner
    from drivefine_core.models.modes import FAMILY_OF
    from drivefine_core.training.bev_targets import WithBEV
    from drivefine_core.training.loop import make_accelerator
    from drivefine_core.training.reward import PairedScenes, ScorerReward
    from drivefine_core.training.rl import train_rl
    from drivefine_core.training.sft import train_sft
    from drivefine_core.training.splits import last_logs

    params = load_params("params.yaml")
    for split in (params.ingest.split.train_name, params.evaluate.split):
        if not Path(f"data/metric_cache/{split}").exists():  # built here when only the scenes and maps travelled
            t0 = time.perf_counter()
            report = build_metric_cache_dir(read_scenes(f"data/ingest/scenes/{split}.parquet"), args.maps,
                                            f"data/metric_cache/{split}", params.metrics,
                                            executor=make_executor(ExecutorParams(workers=args.workers)))
            print(f"gpu_ladder: metric caches of {split}: {report.scenes} scenes, {len(report.failures)} failed, "
                  f"in {time.perf_counter() - t0:.0f} s")
    precision = "bf16" if args.device.startswith("cuda") else "no"
    model = params.model.model_copy(update={**(SMALL if args.small else LARGER), **json.loads(args.model)})
    acc = make_accelerator(cpu=args.device == "cpu")
    batch = 4 if args.small else args.batch_size
    sft, rl = recipe(params, batch, args.seed, precision, args.small)

    train = params.ingest.split.train_name
    features = f"data/features/{train}"
    logs = store_logs(features)
    held = last_logs(logs, params.rl.validation_logs, f"the feature store {features}")
    caches = read_metric_caches(f"data/metric_cache/{train}")
    dataset = InMemoryFeatureDataset(features, logs=[log for log in logs if log not in held])
    if sft.bev_weight > 0:
        dataset = WithBEV(dataset, dataset.tokens, caches, model)
    print(f"gpu_ladder: {acc.device}, {len(dataset)} training samples, model {model.model_dump(include=set(LARGER))}, "
          f"batch {batch}, {precision}; loaded in {clock.elapsed():.0f} s")

    # time each SFT phase; shorten all alike if the ladder's steps do not fit 60% of the budget
    try:
        per_step = timings(model, dataset, sft, acc)
    except Exception:  # noqa: BLE001 - mixed precision that fails on this device: say so, train in fp32
        traceback.print_exc()
        precision = "no"
        print("gpu_ladder: bf16 failed (above); training in fp32")
        sft, rl = recipe(params, batch, args.seed, precision, args.small)
        per_step = timings(model, dataset, sft, acc)
    rs = sft.refine_start
    need = (sft.drivefine.steps * (rs * per_step["drivefine/gen"] + (1 - rs) * per_step["drivefine/refine"])
            + sft.ar.steps * per_step["ar"] + sft.flow.steps * per_step["flow"])
    share = 0.6 * clock.left()
    factor = min(1.0, share / need)
    sft = scaled_sft(sft, factor) if factor < 1 else sft
    print("gpu_ladder: ms per SFT step: " + ", ".join(f"{k} {1e3 * s:.1f}" for k, s in per_step.items())
          + f"; the ladder's steps need {need:.0f} s of {share:.0f} s: steps x {factor:.2f} -> drivefine "
          f"{sft.drivefine.steps}, ar {sft.ar.steps}, flow {sft.flow.steps} at batch {batch}")

    planners: dict[str, Planner] = {}
    minutes: dict[str, float] = {}
    for variant in sft.variants:
        t0 = time.perf_counter()
        torch.manual_seed(args.seed)
        planner = Planner.build(variant, model)
        try:
            train_sft(planner, variant, dataset, sft, accelerator=acc)
        except Exception:  # noqa: BLE001 - the other family still trains and reports
            traceback.print_exc()
            continue
        planners[f"sft/{variant}"] = planner
        minutes[f"sft/{variant}"] = (time.perf_counter() - t0) / 60
        print(f"gpu_ladder: sft {variant} in {minutes[f'sft/{variant}']:.2f} min ({clock.left():.0f} s left)")

    # RL from copies of the SFT planners, when the time left allows (the estimate: a fifth of SFT's time per variant)
    reward = ScorerReward(rl.reward)
    full = InMemoryFeatureDataset(features)
    scenes = PairedScenes(full, full.tokens, caches, limit=rl.max_samples)
    for variant in [v for v in rl.variants if f"sft/{v}" in planners]:
        estimate = 0.2 * 60 * minutes[f"sft/{variant}"]
        if clock.left() < estimate + (20 if args.small else 90):  # keep time for the evaluation
            print(f"gpu_ladder: RL {variant} skipped: {clock.left():.0f} s left")
            continue
        t0 = time.perf_counter()
        planner = copy.deepcopy(planners[f"sft/{variant}"])
        try:
            res = train_rl(planner, variant, scenes, rl, reward, accelerator=acc)
        except Exception:  # noqa: BLE001 - a failed RL leaves the SFT rows to report
            traceback.print_exc()
            continue
        planners[f"rl/{variant}"] = planner
        minutes[f"rl/{variant}"] = (time.perf_counter() - t0) / 60
        selected = next((h["selected_step"] for h in reversed(res.history) if "selected_step" in h), None)
        chosen = f"selected step {selected:.0f}" if selected is not None else "final weights (no validation logs)"
        print(f"gpu_ladder: rl {variant} in {minutes[f'rl/{variant}']:.2f} min, {chosen} ({clock.left():.0f} s left)")

    # the evaluate stage's table on the test split
    ev = params.evaluate
    test = read_metric_caches(f"data/metric_cache/{ev.split}")
    index = FeatureIndex(f"data/features/{ev.split}")
    test = [c for c in test if c.token in index][: 64 if args.small else None]
    agents = baseline_agents(ev.baselines, caches, params.metrics.baselines)
    for stage in ("sft", "rl"):
        for mode in ev.modes:
            planner = planners.get(f"{stage}/{FAMILY_OF[mode]}")
            if planner is None:
                continue
            agents[f"{stage}/{mode}"] = planner_agent(planner, mode, index, ev.batch_size, args.seed)
    last = "rl" if any(k.startswith("rl/") for k in planners) else "sft"
    for mode in ev.shuffled_camera_modes:
        planner = planners.get(f"{last}/{FAMILY_OF[mode]}")
        if planner is not None:
            agents[f"{last}/{mode}/shuffled-camera"] = planner_agent(planner, mode, index, ev.batch_size, args.seed,
                                                                     shuffled_images(test))
    t0 = time.perf_counter()
    table, per_scene = score_table(test, agents, params.metrics, make_executor(ExecutorParams(workers=args.workers)))
    scores = flat_scores(table)
    curated = curated_tokens(per_scene, ev.curated) if ev.curated.enabled else []
    if curated:
        scores.update(flat_scores(means_over(per_scene, curated, SUMMARY_METRICS), "curated/"))
    print(f"gpu_ladder: evaluated {len(agents)} agents on {len(test)} test scenes in {time.perf_counter() - t0:.0f} s")

    n_params = {f: sum(q.numel() for q in planners[f"sft/{f}"].parameters()) / 1e6 for f in sft.variants}
    print(f"\nGPU ladder, seed {args.seed}: {torch.cuda.get_device_name() if acc.device.type == 'cuda' else 'CPU'}; "
          f"model {model.model_dump(include=set(LARGER))} ({', '.join(f'{f} {m:.1f} M' for f, m in n_params.items())} "
          f"parameters); SFT batch {batch}, steps drivefine {sft.drivefine.steps}, ar {sft.ar.steps}, flow "
          f"{sft.flow.steps}; RL steps {({v: rl.optim_for(v).steps for v in rl.variants})}; minutes {({k: round(v, 2) for k, v in minutes.items()})}; "
          f"whole run {clock.elapsed() / 60:.1f} min\n")
    print("Test split (x100):\n")
    print("\n".join(ladder.table([scores])))
    print(f"\nCurated test split ({len(curated)} of {len(test)} scenes):\n")
    print("\n".join(ladder.table([scores], "curated/")))
    if any(k.startswith("rl/") for k in planners):
        try:
            for rung, (ok, detail) in ladder.rungs(scores).items():
                print(f"{'yes' if ok else 'NO '}  {rung}  ({detail})")
        except KeyError as missing:
            print(f"rungs not computed: no score for {missing}")
    if out_json is not None:
        out_json.write_text(json.dumps({"scores": scores, "minutes": minutes, "sft_steps": {
            ph: getattr(sft, ph).steps for ph in ("drivefine", "ar", "flow")}, "factor": factor,
            "ms_per_step": {k: 1e3 * s for k, s in per_step.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
