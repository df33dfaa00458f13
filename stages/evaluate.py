"""Stage evaluate: every planner variant (baselines; each planning mode after SFT and after RL) scored
on the test split with PDMS v1 and EPDMS v2, side by side; per-scene scores; the report."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np

from drivefine_core.evaluation.agents import FeatureIndex, Recorded, baseline_agents, planner_agent, reference_plan
from drivefine_core.evaluation.ladder import best_and_worst, best_variant, score_table
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.models.planner import Planner
from drivefine_core.reports.evaluation_report import SceneView, write_report
from drivefine_core.storage.local import write_file_atomic
from drivefine_core.tracking.runs import metric_key
from stages._common import main, open_run, write_json
from stages.training_curves import read_curves

FAMILY = {"mdm": "drivefine", "mdm+refine": "drivefine", "ar": "spanvla", "flow": "spanvla", "flow-noise": "spanvla"}
REPORT = Path("reports/evaluation")


def planner_path(stage: str, mode: str) -> Path:
    return Path("models") / stage / FAMILY[mode]


def run(params) -> None:
    ev = params.evaluate
    with open_run("evaluate", params, {"evaluate": ev, "metrics": params.metrics}):
        caches = read_metric_caches(f"data/metric_cache/{ev.split}")
        train_split = params.ingest.split.train_name
        train = read_metric_caches(f"data/metric_cache/{train_split}") if "ego_mlp" in ev.baselines else []
        agents = baseline_agents(ev.baselines, train, params.metrics.baselines)
        features = FeatureIndex(f"data/features/{ev.split}")
        caches = [c for c in caches if c.token in features]  # scenes whose features were quarantined drop out
        learned = []
        for stage in ev.stages:
            for mode in ev.modes:
                path = planner_path(stage, mode)
                if not (path / "config.json").exists():
                    print(f"evaluate: no {stage} planner at {path}; {stage}/{mode} skipped")
                    continue
                name = f"{stage}/{mode}"
                agents[name] = Recorded(planner_agent(Planner.load(path), mode, features, ev.batch_size, ev.seed))
                learned.append(name)
        table, per_scene = score_table(caches, agents, params.metrics)
        primary = params.promotion.primary_metric
        best = best_variant(table, learned, primary) if learned else None

        Path("data/evaluation").mkdir(parents=True, exist_ok=True)
        write_file_atomic("data/evaluation/per_scene.parquet", per_scene.to_parquet())
        metrics = {f"{v}/{m}": float(x) for v, row in table.iterrows() for m, x in row.items() if np.isfinite(x)}
        summary = {"best_variant": best, "primary_metric": primary, "scenes": len(caches),
                   "best": {m: float(x) for m, x in table.loc[best].items()} if best else {},
                   "best_planner_dir": str(planner_path(*best.split("/"))) if best else None,
                   "best_mode": best.split("/")[1] if best else None}
        write_json("metrics/evaluate.json", metrics)
        write_json("data/evaluation/summary.json", summary)
        mlflow.log_metrics({metric_key(k): v for k, v in metrics.items()})
        mlflow.log_table(table.reset_index(names="variant"), "scores.json")
        mlflow.log_artifact("data/evaluation/per_scene.parquet")

        views = []
        if best and ev.report_scenes:
            by_token = {c.token: c for c in caches}
            for token, score, label in best_and_worst(per_scene, best, primary, ev.report_scenes):
                cache = by_token[token]
                planned = agents[best].plans[token]  # the plan that was scored
                views.append(SceneView(cache, {"planned": planned, "human": cache.human_future,
                                               "pdm_closed": reference_plan(cache)},
                                       f"{label}: {token} ({best}, {primary}={score:.3f})"))
        notes = [f"{len(caches)} test scenes; best learned variant: {best} ({primary})"]
        report = write_report(REPORT, table, read_curves(), views, notes=notes)
        mlflow.log_artifacts(str(REPORT), "report")
        print(table.to_string(float_format=lambda x: f"{x:.3f}"))
        print(f"evaluate: best learned variant {best}; report at {report}")


if __name__ == "__main__":
    main(run)
