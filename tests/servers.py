"""Real servers for integration tests: an MLflow tracking server over HTTP on a free loopback port; and a
local MLflow store for tests that need no server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class MlflowServer:
    """`mlflow server` with a SQLite backend; artifacts proxied to a folder or an S3 URI."""

    def __init__(self, workdir: Path, artifacts: str | None = None, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
               "--artifacts-destination", artifacts or str(workdir / "artifacts"), "--workers", "1"]
        self.log = open(workdir / "mlflow-server.log", "wb")
        # its own session: stop() ends the server's workers and job consumer with it, even after a failed start
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_http(self.url + "/health", proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError((workdir / "mlflow-server.log").read_text()[-3000:]) from None

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=20)
        self._signal(signal.SIGKILL)  # whatever of the group outlived its parent
        self.log.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


def local_tracking(tmp_path: Path, experiment: str) -> str:
    """MLflow on a SQLite file in tmp_path, the experiment's artifacts there too (never ./mlruns of the
    working directory); returns the tracking URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment(experiment)
    return uri
