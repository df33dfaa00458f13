"""Stage evaluate: every planner variant (baselines; each planning mode after SFT and after RL) scored
on the test split with PDMS v1 and EPDMS v2, side by side; per-scene scores; the report."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from drivefine_core.evaluation.agents import (
    FeatureIndex,
    Recorded,
    baseline_agents,
    planner_agent,
    reference_plan,
    shuffled_images,
)
from drivefine_core.evaluation.curation import curated_tokens, means_over
from drivefine_core.evaluation.ladder import (
    SUMMARY_METRICS,
    best_and_worst,
    best_variant,
    flat_scores,
    plans_vary,
    score_table,
)
from drivefine_core.evaluation.navhard import navhard_scores
from drivefine_core.executor.core import make_executor
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.models.modes import FAMILY_OF
from drivefine_core.models.planner import Planner
from drivefine_core.reports.evaluation_report import SceneView, write_report
from drivefine_core.storage.local import write_file_atomic
from drivefine_core.tracking.runs import metric_key
from stages._common import main, open_run, write_json
from stages.sources import maps_root
from stages.training_curves import read_curves

FAMILY = FAMILY_OF
REPORT = Path("reports/evaluation")


def planner_path(stage: str, mode: str) -> Path:
    return Path("models") / stage / FAMILY[mode]


def refinement_views(agents: dict, per_scene, by_token: dict, k: int) -> list[SceneView]:
    """The refinement expert's draft (the greedy MDM plan: mdm+refine refines exactly that draft) beside its
    refined plan, for the k scenes where refinement changed the score most, of the last stage that has both."""
    for stage in ("rl", "sft"):
        draft, refined = f"{stage}/mdm", f"{stage}/mdm+refine"
        if draft in agents and refined in agents and k:
            score = per_scene.pivot_table(index="token", columns="agent", values="v1/pdms", aggfunc="first")
            gain = (score[refined] - score[draft]).dropna()
            tokens = list(gain.abs().sort_values(ascending=False).index[:k])
            return [SceneView(by_token[t], {"draft (mdm)": agents[draft].plans[t],
                                           "refined (mdm+refine)": agents[refined].plans[t],
                                           "human": by_token[t].human_future},
                              f"refinement on {t}: {stage} PDMS {score.at[t, draft]:.3f} -> {score.at[t, refined]:.3f}")
                    for t in tokens]
    return []


def run(params) -> None:
    ev = params.evaluate
    with open_run("evaluate", params, {"evaluate": ev, "metrics": params.metrics}):
        caches = read_metric_caches(f"data/metric_cache/{ev.split}")
        train_split = params.ingest.split.train_name
        train = (read_metric_caches(f"data/metric_cache/{train_split}", scorer_tables=False)  # the ego-MLP's fit only
                 if "ego_mlp" in ev.baselines else [])
        agents = baseline_agents(ev.baselines, train, params.metrics.baselines)
        features = FeatureIndex(f"data/features/{ev.split}")
        caches = [c for c in caches if c.token in features]  # scenes whose features were quarantined drop out
        learned, planners = [], {}
        for stage in ev.stages:
            for mode in ev.modes:
                path = planner_path(stage, mode)
                if not (path / "config.json").exists():
                    print(f"evaluate: no {stage} planner at {path}; {stage}/{mode} skipped")
                    continue
                name = f"{stage}/{mode}"
                planner = planners[name] = Planner.load(path)
                agents[name] = Recorded(planner_agent(planner, mode, features, ev.batch_size, ev.seed))
                learned.append(name)
                if stage == ev.stages[-1] and mode in ev.shuffled_camera_modes:
                    agents[f"{name}/shuffled-camera"] = planner_agent(planner, mode, features, ev.batch_size, ev.seed,
                                                                     shuffled_images(caches))
        navhard, navhard_line = pd.DataFrame(), ""
        if params.metrics.navhard.enabled and params.metrics.navhard.split == ev.split:
            last = {n: p for n, p in planners.items() if n.startswith(f"{ev.stages[-1]}/")}
            navhard, navhard_line = navhard_scores(
                caches, {n: a for n, a in agents.items() if n in ev.baselines}, last, features,
                f"data/metric_cache/navhard/{ev.split}", params.metrics.navhard, maps_root(params.data),
                ev.batch_size, ev.seed)
            print(navhard_line)
        table, per_scene = score_table(caches, agents, params.metrics, make_executor(params.executor))
        primary = params.promotion.primary_metric
        collapsed = [n for n in learned if not plans_vary(agents[n].plans)]
        for n in collapsed:
            print(f"evaluate: {n} plans the same trajectory for every scene; it is no candidate for the registry")
        candidates = [n for n in learned if n not in collapsed]
        best = best_variant(table, candidates, primary) if candidates else None
        curated = curated_tokens(per_scene, ev.curated) if ev.curated.enabled else []
        curated_table = means_over(per_scene, curated, SUMMARY_METRICS) if curated else None

        Path("data/evaluation").mkdir(parents=True, exist_ok=True)
        write_file_atomic("data/evaluation/per_scene.parquet", per_scene.to_parquet())
        metrics = flat_scores(table)
        if curated_table is not None:
            metrics.update(flat_scores(curated_table, "curated/"))
        summary = {"best_variant": best, "primary_metric": primary, "scenes": len(caches), "collapsed": collapsed,
                   "curated_scenes": len(curated),
                   "best": {m: float(x) for m, x in table.loc[best].items()} if best else {},
                   "best_planner_dir": str(planner_path(*best.split("/"))) if best else None,
                   "best_mode": best.split("/")[1] if best else None}
        metrics.update({f"navhard/{v}/v2/epdms": float(x) for v, x in navhard.get("v2/epdms", {}).items()
                        if np.isfinite(x)})
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
        views += refinement_views(agents, per_scene, {c.token: c for c in caches}, ev.report_scenes)
        notes = [f"{len(caches)} test scenes; best learned variant: {best} ({primary})"]
        if navhard_line:
            notes.append(navhard_line)
        more = [("navhard two-stage EPDMS (v2)", navhard)] if len(navhard) else []
        if curated_table is not None:
            more.append((f"Curated test split ({len(curated)} of {len(caches)} scenes: constant velocity "
                         f"< {ev.curated.max_constant_velocity}, human >= {ev.curated.min_human} {ev.curated.metric})",
                         curated_table))
        report = write_report(REPORT, table, read_curves(), views, notes=notes, more_tables=more)
        mlflow.log_artifacts(str(REPORT), "report")
        print(table.to_string(float_format=lambda x: f"{x:.3f}"))
        print(f"evaluate: best learned variant {best}; report at {report}")


if __name__ == "__main__":
    main(run)
