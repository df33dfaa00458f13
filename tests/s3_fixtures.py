"""S3 for tests: moto's threaded server on a free loopback port.

Registered for every test by tests/conftest.py (pytest_plugins).

- `s3_server` (session): the running server; `.stop()` / `.start()` take the endpoint down and bring it
  back on the same port (moto keeps its buckets in process memory, so objects survive a restart).
- `s3_env` (function): sets AWS_ENDPOINT_URL and test credentials for boto3, pyarrow and dvc; yields the
  endpoint URL.
- `s3_bucket` (function): a fresh, empty bucket; yields its name.
"""

from __future__ import annotations

import socket
import uuid
from typing import Iterator

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoEndpoint:
    """A ThreadedMotoServer that can be stopped for real (listening socket closed) and restarted."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        # ThreadedMotoServer.stop() ends the accept loop but keeps the socket bound: close it, so that
        # clients get "connection refused" (an outage) and a restart can bind the same port.
        inner = getattr(self._server, "_server", None)
        if inner is not None:
            inner.server_close()
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoEndpoint]:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    # One request per connection: with keep-alive, handler threads keep serving open connections after
    # the server is stopped, and an outage could not be simulated.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MotoRequestHandler, "protocol_version", "HTTP/1.0", raising=False)
        endpoint = MotoEndpoint()
        endpoint.start()
        try:
            yield endpoint
        finally:
            endpoint.stop()


@pytest.fixture
def s3_env(s3_server: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if not s3_server.running:  # a test that stopped it and failed before restarting
        s3_server.start()
    for name, value in {
        "AWS_ENDPOINT_URL": s3_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield s3_server.url


@pytest.fixture
def s3_bucket(s3_env: str) -> Iterator[str]:
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1").create_bucket(Bucket=name)
    yield name
