"""prefect.yaml: it parses as Prefect's own model, every entrypoint is a real flow that accepts the
deployment's parameters, pools exist in infra/, and the GPU stages are routed to the GPU pool."""

from __future__ import annotations

import re

import pytest
import yaml
from infra_files import compose_pools, k8s_pools, prefect_yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import Flow, load_flow_from_entrypoint

from tests.repo_copy import REPO


@pytest.fixture(scope="module")
def spec() -> dict:
    return prefect_yaml()


def test_parses_as_prefects_model_with_the_three_deployments(spec):
    model = PrefectYamlModel.model_validate(spec)
    names = {d.name for d in model.deployments}
    assert {"nightly-retrain", "ingest-new-logs", "gpu-stages"} <= names
    nightly = next(d for d in model.deployments if d.name == "nightly-retrain")
    assert nightly.schedules and nightly.schedules[0].cron == "0 2 * * *"
    assert nightly.schedules[0].timezone == "UTC"


@pytest.mark.parametrize("index", range(3))
def test_entrypoints_are_flows_that_accept_their_parameters(spec, index, monkeypatch):
    monkeypatch.chdir(REPO)  # entrypoints are relative to the repository root, as `prefect deploy` reads them
    deployment = spec["deployments"][index]
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    assert isinstance(flow, Flow)
    flow.validate_parameters(deployment.get("parameters", {}))  # raises on a wrong name or type


def test_every_pool_is_served_by_a_worker_in_compose_and_on_kubernetes(spec):
    used = {d["work_pool"]["name"] for d in spec["deployments"]}
    assert used == {"drivefine-cpu", "drivefine-gpu"}
    assert used <= compose_pools()
    assert used <= k8s_pools()


def test_gpu_stages_run_on_the_gpu_pool_and_cpu_pool_hides_gpus(spec):
    by_name = {d["name"]: d for d in spec["deployments"]}
    gpu = by_name["gpu-stages"]
    assert gpu["work_pool"]["name"] == "drivefine-gpu" and gpu["entrypoint"] == "flows/retrain.py:retrain"
    assert set(gpu["parameters"]["stages"]) == {"sft", "rl", "evaluate"}
    assert gpu["work_pool"]["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] != ""
    nightly = by_name["nightly-retrain"]
    assert nightly["work_pool"]["name"] == "drivefine-cpu"
    assert nightly["work_pool"]["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] == ""
    # nightly starts the GPU deployment by "<flow name>/<deployment name>"
    flow_name = load_flow_from_entrypoint(str(REPO / gpu["entrypoint"].split(":")[0]) + ":retrain").name
    assert nightly["parameters"]["gpu_deployment"] == f"{flow_name}/gpu-stages"
    ingest = by_name["ingest-new-logs"]
    target_flow, target = ingest["parameters"]["retrain_deployment"].split("/")
    assert target == "nightly-retrain"
    assert target_flow == load_flow_from_entrypoint(str(REPO / nightly["entrypoint"].split(":")[0])
                                                    + ":" + nightly["entrypoint"].split(":")[1]).name


def test_pull_step_uses_the_workspace_the_workers_set():
    text = (REPO / "prefect.yaml").read_text()
    referenced = set(re.findall(r"\{\{\s*\$(\w+)\s*\}\}", text))
    assert referenced == {"DRIVEFINE_WORKSPACE"}
    compose = yaml.safe_load((REPO / "infra/docker-compose.yml").read_text())
    for service in ("worker-cpu", "worker-gpu"):
        env = compose["services"][service]["environment"]
        assert env["DRIVEFINE_WORKSPACE"] == compose["services"][service]["working_dir"]
