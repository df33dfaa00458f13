"""Stage register: the evaluate stage's best planner becomes a new version of the registered model
(alias `candidate`, lineage and scores as tags); the promotion gate decides whether it becomes
`champion`, comparing with the current champion on the same test split."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from drivefine_core.evaluation.champion import SPLIT_TAG, scores_on_split, split_digest
from drivefine_core.features.row_groups import list_row_groups, read_row_group
from drivefine_core.features.samples import table_columns
from drivefine_core.tracking.lineage import git_state, manifests_digest
from drivefine_core.tracking.planner_pyfunc import frame_from_feature_columns
from drivefine_core.tracking.promotion import decision_record, run_gate
from drivefine_core.tracking.registry import dvc_lock_tags, params_digest, register_planner
from stages._common import main, open_run, write_json


def run(params) -> None:
    summary = json.loads(Path("data/evaluation/summary.json").read_text())
    if not summary.get("best_variant") and summary.get("collapsed"):
        # every learned planner plans one trajectory for every scene: nothing to register, a decision, exit 0
        reason = f"no candidate: {', '.join(summary['collapsed'])} plan the same trajectory for every scene"
        write_json("data/registry/decision.json", {"model": params.tracking.registered_model, "version": "-", "variant": "-",
                                                   "decision": "refused", "promote": False, "reason": reason})
        write_json("metrics/register.json", {"promoted": 0})
        print(f"register: nothing registered: {reason}")
        return
    if not summary.get("best_variant"):
        raise SystemExit("register: the evaluate stage scored no learned planner (data/evaluation/summary.json)")
    name = params.tracking.registered_model
    split = params.evaluate.split
    with open_run("register", params, {"promotion": params.promotion, "tracking": params.tracking}) as run:
        client = MlflowClient()
        digest = split_digest(split)
        commit, dirty = git_state(Path("."))
        tags = {"git.commit": commit, "git.dirty": str(dirty).lower(), "params.digest": params_digest(),
                "data.features_train": manifests_digest(f"data/features/{params.ingest.split.train_name}/_manifest.json"),
                SPLIT_TAG: digest,
                "planner.variant": summary["best_variant"], "mlflow.source_run": run.info.run_id,
                **dvc_lock_tags()}
        cols = table_columns(read_row_group(list_row_groups(f"data/features/{split}")[0]))
        example = frame_from_feature_columns(cols, [0])
        scores = summary["best"]
        version = register_planner(summary["best_planner_dir"], summary["best_mode"], example, name, tags, scores,
                                   limits=params.ops.serving)

        def champion_scores(champ: str) -> dict[str, float]:
            champ_scores, rescored = scores_on_split(client, name, champ, split, params.metrics,
                                                     params.evaluate.batch_size, params.evaluate.seed)
            if rescored:
                print(f"register: champion v{champ} re-scored on the current {split} split")
            return champ_scores

        # A refusal (worse, not finite, champion alias unreadable) is a decision: recorded, exit 0.
        decision = run_gate(client, name, version, scores, params.promotion, champion_scores)
        record = {"model": name, "version": version, "variant": summary["best_variant"], **decision_record(decision)}
        write_json("data/registry/decision.json", record)
        write_json("metrics/register.json", {"version": int(version), "promoted": int(decision.promote)})
        mlflow.log_dict(record, "promotion_decision.json")
        mlflow.set_tags({"gate.decision": decision.decision, "registered.version": version})
        verdict = "PROMOTED to champion" if decision.promote else "not promoted"
        print(f"register: {name} v{version} ({summary['best_variant']}) {verdict}: {decision.reason}")


if __name__ == "__main__":
    main(run)
