"""The whole pipeline with real parts: an MLflow tracking server over HTTP (SQLite backend, artifacts
on a moto S3 server), the Prefect retrain flow over every DVC stage on tiny params, the registered
version with its lineage, the promotion gate on a better and a worse candidate, and the champion
served by `drivefine serve` answering over HTTP."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.repo_copy import run_cli
from tests.servers import free_port, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow; CI runs it
MODEL = "drivefine-planner"
# the `pipeline` fixture (tests/pipeline_fixture.py) runs the retrain flow once for every module that uses it


def test_every_stage_ran_and_the_first_candidate_became_champion(pipeline):
    repo, _, server, log, _ = pipeline
    for stage in ("generate", "ingest", "features", "metric_cache", "sft", "rl", "evaluate", "register"):
        assert f"| {stage} | ran |" in log, stage
    client = MlflowClient(server.url)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    candidate = client.get_model_version_by_alias(MODEL, "candidate")
    assert champion.version == candidate.version
    assert champion.tags["gate.decision"] == "promoted" and "no champion yet" in champion.tags["gate.reason"]
    assert "promoted to **champion**" in log  # the decision is in the Prefect summary too


def test_registered_version_carries_lineage_and_scores(pipeline):
    repo, _, server, _, _ = pipeline
    mv = MlflowClient(server.url).get_model_version_by_alias(MODEL, "champion")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert mv.tags["git.commit"] == head
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    features_out = next(o for o in lock["features"]["outs"] if o["path"] == "data/features")
    assert mv.tags["dvc.features.data/features"] == features_out["md5"]
    for key in ("params.digest", "eval.split_digest", "data.features_train", "score.v2/epdms", "score.v1/pdms",
                "score.v2/nc", "planner.mode"):
        assert mv.tags[key], key


def test_evaluate_champion_rescores_the_registered_planner_to_the_evaluate_stage_numbers(pipeline):
    """The champion downloaded from the registry and scored again gives the evaluate stage's scores."""
    repo, env, server, _, _ = pipeline
    proc = run_cli(repo, "evaluate-champion", "--no-refresh", env=env, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    client = MlflowClient(server.url)
    mv = client.get_model_version_by_alias(MODEL, "champion")
    summary = json.loads((repo / "data/evaluation/summary.json").read_text())
    run = client.search_runs([client.get_experiment_by_name("drivefine").experiment_id],
                             "attributes.run_name = 'evaluate-champion'")[0]
    for metric in ("v1/pdms", "v2/epdms", "v1/nc", "v2/dac"):
        assert abs(run.data.metrics[metric] - summary["best"][metric]) < 1e-9, metric
    assert mv.tags["last_evaluated.split_digest"] == mv.tags["eval.split_digest"]


def test_artifacts_are_on_the_s3_endpoint(pipeline):
    _, _, _, _, s3 = pipeline
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name="us-east-1",
                                            aws_access_key_id="testing", aws_secret_access_key="testing")
            .list_objects_v2(Bucket="mlflow-e2e").get("Contents", [])]
    assert any(k.endswith("MLmodel") for k in keys)
    assert any("report/report.md" in k for k in keys)


def _register_with_scores(repo, env, scores_delta):
    """A candidate built from the registered planner with its scores shifted: same split, so the gate
    compares the recorded scores."""
    code = f"""
import json, mlflow
from mlflow.tracking import MlflowClient
from drivefine_core.pipeline_params import PromotionParams
from drivefine_core.tracking.promotion import apply_decision, current_champion, decide
from drivefine_core.tracking.registry import register_planner, version_scores
from drivefine_core.evaluation.plan_scene import scene_input
import pandas as pd
client = MlflowClient()
champ = current_champion(client, "{MODEL}")
mv = client.get_model_version("{MODEL}", champ)
scores = {{k: v + {scores_delta} for k, v in version_scores(client, "{MODEL}", champ).items()}}
summary = json.load(open("data/evaluation/summary.json"))
frame, _, _ = scene_input(pd.read_parquet("data/evaluation/per_scene.parquet")["token"].iloc[0])
mlflow.set_experiment("drivefine")
with mlflow.start_run(run_name="constructed"):
    tags = {{"eval.split_digest": mv.tags["eval.split_digest"]}}
    v = register_planner(summary["best_planner_dir"], summary["best_mode"], frame, "{MODEL}", tags, scores)
d = apply_decision(client, "{MODEL}", v, decide(scores, version_scores(client, "{MODEL}", champ),
                   PromotionParams(), champ))
print(json.dumps({{"version": v, "promote": d.promote, "reason": d.reason}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gate_refuses_a_worse_candidate_and_promotes_a_better_one(pipeline):
    repo, env, server, _, _ = pipeline
    client = MlflowClient(server.url)
    before = client.get_model_version_by_alias(MODEL, "champion").version
    worse = _register_with_scores(repo, env, -0.05)
    assert not worse["promote"] and "failed" in worse["reason"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == before
    assert client.get_model_version(MODEL, worse["version"]).tags["gate.decision"] == "refused"
    better = _register_with_scores(repo, env, +0.05)
    assert better["promote"], better["reason"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == better["version"]


def test_champion_is_served_over_http(pipeline):
    repo, env, _, _, _ = pipeline
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "drivefine"), "serve", "-p", str(port)],  # the README's
                            cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=120, proc=proc)
        tokens = pd.read_parquet(repo / "data/evaluation/per_scene.parquet")["token"].unique()
        sys.path.insert(0, str(repo))
        from drivefine_core.evaluation.plan_scene import scene_input
        cwd = os.getcwd()
        os.chdir(repo)
        try:  # two scenes far apart in the split: the champion must not plan one trajectory for every scene
            frame = pd.concat([scene_input(tokens[0])[0], scene_input(tokens[-1])[0]], ignore_index=True)
        finally:
            os.chdir(cwd)
        body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.loads(resp.read())
        pred, other = answer["predictions"][0], answer["predictions"][1]
        assert len(pred["x"]) == len(pred["y"]) == len(pred["heading"]) == 8
        assert all(isinstance(v, float) for v in pred["x"])
        assert max(abs(a - b) for a, b in zip(pred["x"] + pred["y"], other["x"] + other["y"])) > 0.05
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_plan_command_prints_and_draws_the_champions_plan(pipeline):
    repo, env, _, _, _ = pipeline
    token = pd.read_parquet(repo / "data/evaluation/per_scene.parquet")["token"].iloc[0]
    proc = run_cli(repo, "plan", "--scene", token, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "heading [rad]" in proc.stdout and proc.stdout.count("\n   ") >= 8
    assert (repo / "reports/plans" / f"{token}.png").exists()
    bad = run_cli(repo, "plan", "--scene", "0000000000000000", env=env, timeout=300)
    assert bad.returncode == 2 and "in no feature store" in bad.stderr


def test_evaluate_scores_navhard_two_stage_with_reactive_agents(pipeline):
    """The metric_cache stage built stage-2 caches of the test split; evaluate scored every baseline and the
    last stage's planners on them (the planners with the logged camera at the stage-2 starts)."""
    repo = pipeline[0]
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    groups = json.loads((repo / "data/metric_cache/navhard/test/groups.json").read_text())
    assert groups and all(g["synthetic_now"] for g in groups)
    for variant in ("constant_velocity", "human", "rl/mdm+refine", "rl/flow"):
        assert 0.0 <= metrics[f"navhard/{variant}/v2/epdms"] <= 1.0, variant
    report = (repo / "reports/evaluation/report.md").read_text()
    assert "navhard two-stage" in report and "reactive IDM vehicles" in report
    assert "logged camera at every stage-2 start" in report
