import pytest

from tests.servers import MlflowServer

# s3_server / s3_env / s3_bucket: a real moto S3 endpoint; pipeline: the retrain flow run once on tiny params
pytest_plugins = ["tests.s3_fixtures", "tests.pipeline_fixture"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server over HTTP (SQLite backend, local artifacts)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()
