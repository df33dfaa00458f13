"""infra/ cross-checked against the code (no docker here): the environment the containers set is what the
code reads, URLs point at real services, buckets exist, GPUs are requested, accelerate loads the configs."""

from __future__ import annotations

import ast
import re
from urllib.parse import urlparse

import pytest
import yaml
from infra_files import INFRA, REPO, compose, k8s_docs, prefect_yaml

from drivefine_core.ops.params import REMOTE_URL_ENV, IngestLogsParams

# Read by libraries (Prefect, MLflow, DVC, CUDA), not by our code; a name outside this list and outside
# the code is a typo or a leftover.
LIBRARY_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "DVC_NO_ANALYTICS",
               "NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "PREFECT_API_URL", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}
# What a pipeline container cannot do without: the variables the README tells a team to set.
REQUIRED_ENV = {"MLFLOW_TRACKING_URI", "PREFECT_API_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", REMOTE_URL_ENV}
WORKERS = ("worker-cpu", "worker-gpu")


def _constants(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", n.value)}


def env_names_read_by_code() -> set[str]:
    """Upper-case string constants in our modules that touch os.environ / os.getenv, plus the values of
    constants named *_ENV / *_ENVS anywhere (names defined in one module and read in another)."""
    names: set[str] = set()
    for folder in ("drivefine_core", "flows", "stages"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            tree = ast.parse(text)
            if "environ" in text or "getenv" in text:
                names |= _constants(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and re.search(r"_ENVS?$", t.id) for t in node.targets):
                    names |= _constants(node.value)
    return names


def prefect_yaml_env_refs() -> set[str]:
    return set(re.findall(r"\{\{\s*\$(\w+)\s*\}\}", yaml.safe_dump(prefect_yaml())))


@pytest.fixture(scope="module")
def services() -> dict:
    return compose()["services"]


def test_worker_env_is_what_the_code_reads(services):
    code = env_names_read_by_code()
    assert REQUIRED_ENV - LIBRARY_ENV <= code, "the code stopped reading a variable the infra sets"
    for name in WORKERS:
        env = services[name]["environment"]
        assert REQUIRED_ENV <= set(env), f"{name} misses {REQUIRED_ENV - set(env)}"
        unknown = set(env) - code - LIBRARY_ENV - prefect_yaml_env_refs()
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_urls_point_at_services_on_their_ports(services):
    env = services["worker-cpu"]["environment"]
    mlflow = urlparse(env["MLFLOW_TRACKING_URI"])
    assert mlflow.hostname == "mlflow" and f"--port={mlflow.port}" in services["mlflow"]["command"]
    prefect = urlparse(env["PREFECT_API_URL"])
    assert prefect.hostname == "prefect-server" and prefect.path == "/api"
    assert str(prefect.port) in services["prefect-server"]["command"]
    for key in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        s3 = urlparse(env[key])
        assert s3.hostname == "minio" and f"{s3.port}:{s3.port}" in services["minio"]["ports"]
    backend = next(a for a in services["mlflow"]["command"] if a.startswith("--backend-store-uri="))
    assert "@postgres:5432/mlflow" in backend
    assert "@postgres:5432/prefect" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert "mlflow prefect" in (INFRA / "postgres/init-databases.sh").read_text()


def test_buckets_the_code_uses_are_created(services):
    init = " ".join(services["minio-init"]["command"])
    made = set(re.findall(r"local/([a-z0-9.-]+)", init))
    env = services["worker-cpu"]["environment"]
    assert urlparse(env[REMOTE_URL_ENV]).hostname in made  # the DVC remote
    assert IngestLogsParams().bucket in made  # where new logs land
    artifacts = next(a for a in services["mlflow"]["command"] if a.startswith("--artifacts-destination="))
    assert urlparse(artifacts.split("=", 1)[1]).hostname in made


def test_no_secrets_in_files_and_env_file_ignored(services):
    for svc in services.values():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"SECRET|PASSWORD|ACCESS_KEY", key):
                assert str(value).startswith("${"), f"{key} must come from infra/.env, not the file"
    assert ".env" in (INFRA / ".gitignore").read_text().split()
    example = dict(line.split("=", 1) for line in (INFRA / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert all("change-me" in v for k, v in example.items() if "PASSWORD" in k)
    for doc in k8s_docs():
        assert doc["kind"] != "Secret", "credentials are created with kubectl, never committed"


def test_gpu_worker_reserves_gpus_and_uses_the_cuda_build(services):
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX_URL"]
    assert "deploy" not in services["worker-cpu"]
    assert services["worker-cpu"]["environment"]["CUDA_VISIBLE_DEVICES"] == ""


def test_dockerfile_syncs_the_lock():
    text = (INFRA / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in text
    assert text.count("uv sync --frozen") == 2  # dependencies layer, then the project
    assert "torch==${TORCH_VERSION}" in text
    locked = re.search(r'name = "torch", specifier = "==([^"]+)"', (REPO / "uv.lock").read_text())
    assert locked and f"ARG TORCH_VERSION={locked.group(1)}" in text


@pytest.mark.parametrize("name,machines", [("single_node_multi_gpu.yaml", 1), ("multi_node.yaml", 2)])
def test_accelerate_configs_load_with_accelerates_classes(name, machines):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(INFRA / "accelerate" / name))  # raises on unknown keys
    assert isinstance(cfg, ClusterConfig)
    assert cfg.distributed_type == DistributedType.MULTI_GPU and not cfg.use_cpu
    assert cfg.num_machines == machines and cfg.num_processes % machines == 0 and cfg.num_processes > machines
    if machines > 1:
        assert cfg.main_process_ip and cfg.main_process_port


@pytest.mark.parametrize("pool", ["gpu", "cpu"])
def test_k8s_job_templates_render_with_prefects_templating(pool):
    import json

    from prefect.utilities.templating import apply_values, find_placeholders

    template = json.loads((INFRA / "k8s" / f"{pool}-base-job-template.json").read_text())
    props = template["variables"]["properties"]
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    assert used <= set(props), f"placeholders without a variable: {used - set(props)}"
    deployment = next(d for d in prefect_yaml()["deployments"] if d["work_pool"]["name"] == f"drivefine-{pool}")
    assert set(deployment["work_pool"]["job_variables"]) <= set(props)
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    values.update(name="run", command="prefect flow-run execute", labels={})
    pod = apply_values(template["job_configuration"], values)["job_manifest"]["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    pvc = next(d for d in k8s_docs() if d["kind"] == "PersistentVolumeClaim")
    assert claims == {pvc["metadata"]["name"]} and "ReadWriteMany" in pvc["spec"]["accessModes"]
    if pool == "gpu":
        assert limits["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    else:
        assert "nvidia.com/gpu" not in limits and "nodeSelector" not in pod


def test_k8s_workers_and_rbac_parse():
    docs = k8s_docs()
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Deployment",
            "PersistentVolumeClaim"} <= kinds
    role = next(d for d in docs if d["kind"] == "Role")
    assert any("jobs" in r["resources"] and "create" in r["verbs"] for r in role["rules"])
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert REQUIRED_ENV - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(config)
    assert not set(config) - env_names_read_by_code() - LIBRARY_ENV - prefect_yaml_env_refs()


def test_readme_names_every_variable_a_team_sets():
    text = (INFRA / "README.md").read_text()
    missing = [v for v in REQUIRED_ENV | {"DRIVEFINE_WORKSPACE"} if v not in text]
    assert not missing


def test_the_data_stages_ray_cluster(services):
    """compose: a head, worker nodes and a CPU worker that is a Ray driver on the head's port, all in one
    workspace path; k8s: a KubeRay RayCluster on the workspace volume, and CPU flow-run pods that join it."""
    import json

    from drivefine_core.executor.ray_backend import FORWARDED_ENV

    port = next(a for a in services["ray-head"]["command"] if a.startswith("--port=")).split("=")[1]
    for name in ("worker-cpu", "ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["RAY_ADDRESS"] == f"ray-head:{port}" and env["RAY_AUTH_TOKEN"].startswith("${")
        assert services[name]["working_dir"] == "/workspace" and "..:/workspace" in services[name]["volumes"]
    assert "--num-cpus=0" in services["worker-cpu"]["entrypoint"][2] and services["worker-cpu"]["command"][0] == "prefect"
    assert "RAY_ADDRESS" not in services["worker-gpu"]["environment"]  # GPU stages score in their own pool
    assert set(FORWARDED_ENV) - {"OMP_NUM_THREADS", "AWS_SESSION_TOKEN"} <= set(services["ray-worker"]["environment"])
    cluster = next(d for d in k8s_docs() if d["kind"] == "RayCluster")
    pods = [cluster["spec"]["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in cluster["spec"]["workerGroupSpecs"]]
    for pod in pods:
        assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v} == {
            "drivefine-workspace"}
        assert pod["containers"][0]["workingDir"] == "/workspace"
    job = json.loads((INFRA / "k8s" / "cpu-base-job-template.json").read_text())["job_configuration"]
    container = job["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    address = next(e["value"] for e in container["env"] if e["name"] == "RAY_ADDRESS")
    assert address.startswith(f"{cluster['metadata']['name']}-head-svc.") and "--num-cpus=0" in container["command"][2]
