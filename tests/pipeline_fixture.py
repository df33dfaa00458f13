"""The whole pipeline run once per test session on tiny params, with real parts: an MLflow tracking server
over HTTP (SQLite backend, artifacts on a moto S3 server) and the Prefect retrain flow over every DVC stage.
Shared by the modules that read what it left (tests/integration)."""

import os

import boto3
import pytest

from tests.integration.tiny_params import TINY
from tests.repo_copy import make_repo_copy, pipeline_env, run_cli
from tests.servers import MlflowServer


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, s3_server):
    s3 = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "MLFLOW_S3_ENDPOINT_URL": s3_server.url, "AWS_ENDPOINT_URL": s3_server.url}
    boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="mlflow-e2e")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), artifacts="s3://mlflow-e2e/artifacts",
                          env={**os.environ, **s3})
    repo = make_repo_copy(tmp_path_factory.mktemp("e2e") / "drivefine", TINY)
    env = pipeline_env(MLFLOW_TRACKING_URI=server.url)
    proc = run_cli(repo, "retrain", env=env, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    yield repo, env, server, proc.stdout + proc.stderr, s3
    server.stop()
