import pytest
from servers import MlflowServer

pytest_plugins = ["s3_fixtures"]  # s3_server / s3_env / s3_bucket: a real moto S3 endpoint


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server over HTTP (SQLite backend, local artifacts)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()
