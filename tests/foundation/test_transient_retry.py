"""A stage that fails because an endpoint did not answer exits 75; the flow retries only those."""

import pytest
import requests
from mlflow.exceptions import MlflowException

from drivefine_core.storage.uri import StorageError
from flows.retrain import is_transient
from stages import _common
from stages._common import EXIT_TRANSIENT, is_transient_error


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError("refused"),
    requests.exceptions.ConnectionError("Max retries exceeded with url"),
    StorageError("s3://b/k: gave up after 5 tries"),
    MlflowException("API request to http://127.0.0.1:1/api failed: Max retries exceeded"),
])
def test_unreachable_endpoints_are_transient(exc):
    assert is_transient_error(exc)


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
        raise requests.exceptions.ConnectionError("Connection refused")

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


def test_flow_retry_condition_reads_the_exit_code_through_dvc_errors():
    inner = RuntimeError("failed to run: python -m stages.ingest, exited with 75")
    outer = RuntimeError("failed to reproduce 'ingest'")
    outer.__cause__ = inner
    assert is_transient(None, None, _State(outer))
    assert not is_transient(None, None, _State(RuntimeError("failed to run: x, exited with 1")))
