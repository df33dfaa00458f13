"""A stage that fails because an endpoint did not answer exits 75; the flow retries only those, reading
the exit status DVC saw (not the text of an error)."""

import subprocess
import sys

import pytest
import requests
from mlflow.tracking import MlflowClient

from drivefine_core.storage.uri import StorageError
from drivefine_core.storage.uri import is_transient as is_transient_error
from flows.dvc_graph import StageFailed, reproduce
from flows.retrain import is_transient
from stages import _common
from stages._common import EXIT_TRANSIENT


@pytest.mark.parametrize("exc", [ConnectionRefusedError("refused"), StorageError("write s3://b/k: failed after its retries")])
def test_unreachable_endpoints_are_transient(exc):
    assert is_transient_error(exc)


def test_an_unreachable_http_server_is_transient():
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        requests.get("http://127.0.0.1:9/api", timeout=2)  # port 9 (discard): nothing listens
    assert is_transient_error(info.value)


def test_an_unreachable_mlflow_server_is_transient(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(Exception) as info:
        MlflowClient("http://127.0.0.1:9").search_experiments()  # port 9 (discard): nothing listens
    assert type(info.value).__name__ == "MlflowException"
    assert is_transient_error(info.value)


def test_wrapped_cause_is_found_and_bugs_are_not_transient():
    try:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as inner:
            raise RuntimeError("stage failed") from inner
    except RuntimeError as outer:
        assert is_transient_error(outer)
    assert not is_transient_error(ValueError("bad data: field speed"))
    assert not is_transient_error(KeyError("x"))


def test_stage_main_exits_75_only_for_transient_failures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("run: {seed: 1}\n")

    def unreachable(params):
        requests.get("http://127.0.0.1:9/api", timeout=2)

    with pytest.raises(SystemExit) as stop:
        _common.main(unreachable)
    assert stop.value.code == EXIT_TRANSIENT

    def buggy(params):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        _common.main(buggy)


class _State:
    def __init__(self, exc):
        self.exc = exc

    def result(self):
        raise self.exc


def _failed_repro(tmp_path, code: int) -> StageFailed:
    """`dvc repro` of a stage whose command exits with `code` (run from the repository root, as the flow does)."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(
        f"stages:\n  s:\n    cmd: python -c \"import sys; print('went wrong'); sys.exit({code})\"\n    outs: [o]\n")
    with pytest.raises(StageFailed) as info:
        reproduce(tmp_path, "s")
    return info.value


@pytest.mark.parametrize("code, retried", [(EXIT_TRANSIENT, True), (1, False), (2, False)])
def test_flow_retries_by_the_exit_status_dvc_saw(tmp_path, monkeypatch, code, retried):
    monkeypatch.chdir(tmp_path)
    failure = _failed_repro(tmp_path, code)
    assert failure.exit_code == code and failure.stage == "s"
    assert is_transient(None, None, _State(failure)) is retried
    assert not is_transient(None, None, _State(RuntimeError(f"failed to run: x, exited with {EXIT_TRANSIENT}")))
