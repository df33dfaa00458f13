"""The promotion gate never guesses (issue 13, item 3), against a real MLflow tracking server.

A champion alias naming a version the registry no longer has, a NaN / inf candidate score and a NaN
champion score each make the gate refuse with a reason (and say how to repair the registry), instead of
promoting or reading as "no champion yet"; `drivefine plan` on such an alias prints one line.
"""

import math
import sqlite3
import uuid
from pathlib import Path

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from drivefine_core.pipeline_params import PromotionParams
from drivefine_core.tracking.promotion import ChampionUnreadable, current_champion, decide, run_gate
from flows.cli import app
from tests.servers import free_port

P = PromotionParams(primary_metric="v2/epdms", min_gain=0.0)
GOOD = {"v2/epdms": 0.8, "v2/nc": 0.97, "v2/dac": 0.95}
REPO = Path(__file__).resolve().parents[2]


def _registry(server, n_versions):
    """A fresh registered model on the server with n versions; (client, name, versions)."""
    client = MlflowClient(server.url)
    name = f"planner-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    # versions need no artifacts here: the gate reads aliases, versions and tags only
    versions = [str(client.create_model_version(name, f"s3://nowhere/models/{i}").version) for i in range(n_versions)]
    return client, name, versions


def _dangle(server, name, alias="champion", version=99):
    """Point an alias at a version that does not exist, as a restored or hand-edited registry DB does."""
    db = Path(server.log.name).parent / "mlflow.db"
    with sqlite3.connect(db) as conn:
        n = conn.execute("UPDATE registered_model_aliases SET version=? WHERE name=? AND alias=?",
                         (version, name, alias)).rowcount
    assert n == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_candidate_is_refused_even_without_champion(bad):
    d = decide({"v2/epdms": bad, "v2/nc": 1.0, "v2/dac": 1.0}, None, P)
    assert not d.promote and "not a finite number" in d.reason
    d = decide({"v2/epdms": 0.9, "v2/nc": bad, "v2/dac": 1.0}, GOOD, P, "1")
    assert not d.promote and "v2/nc" in d.reason


def test_nan_champion_score_refuses_with_the_repair():
    d = decide(GOOD, {"v2/epdms": math.nan, "v2/nc": 1.0, "v2/dac": 1.0}, P, "4")
    assert not d.promote and "champion v4" in d.reason and "not a finite number" in d.reason
    assert "delete-alias champion" in d.reason


def test_dangling_champion_alias_refuses_and_says_how_to_repair(mlflow_server):
    client, name, (v1, v2) = _registry(mlflow_server, 2)
    client.set_registered_model_alias(name, "champion", v1)
    _dangle(mlflow_server, name)
    with pytest.raises(ChampionUnreadable, match="points at version 99, which does not exist"):
        current_champion(client, name)
    decision = run_gate(client, name, v2, GOOD, P, champion_scores=lambda v: pytest.fail("must not score"))
    assert not decision.promote and decision.decision == "refused"
    assert "delete-alias champion" in decision.reason
    assert client.get_registered_model(name).aliases["champion"] == "99"  # nothing moved
    tags = client.get_model_version(name, v2).tags
    assert tags["gate.decision"] == "refused" and "does not exist" in tags["gate.reason"]


def test_nan_candidate_is_not_promoted_and_nan_champion_blocks_with_reason(mlflow_server):
    client, name, (v1, v2) = _registry(mlflow_server, 2)
    refused = run_gate(client, name, v1, {**GOOD, "v2/epdms": math.nan}, P, champion_scores=lambda v: {})
    assert not refused.promote and current_champion(client, name) is None
    assert client.get_model_version(name, v1).tags["gate.decision"] == "refused"
    client.set_registered_model_alias(name, "champion", v1)
    blocked = run_gate(client, name, v2, GOOD, P, champion_scores=lambda v: {**GOOD, "v2/epdms": math.nan})
    assert not blocked.promote and "not a finite number" in blocked.reason
    assert current_champion(client, name) == v1


def test_unreachable_registry_is_an_error_not_a_decision(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    client = MlflowClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(MlflowException):
        current_champion(client, "planner")


def test_plan_on_a_dangling_alias_prints_one_line_and_delete_alias_repairs(mlflow_server, tmp_path, monkeypatch):
    client, name, (v1,) = _registry(mlflow_server, 1)
    client.set_registered_model_alias(name, "champion", v1)
    _dangle(mlflow_server, name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"]["registered_model"] = name
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)  # the CLI changes directory to --repo; restored after the test
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    result = CliRunner().invoke(app, ["plan", "--scene", "any", "--repo", str(tmp_path)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not exist" in errors[0] and "drivefine delete-alias champion" in errors[0]
    assert "Traceback" not in result.output and len(result.output.splitlines()) <= 2  # + MLflow's own INFO line
    repaired = CliRunner().invoke(app, ["delete-alias", "champion", "--repo", str(tmp_path)])
    assert repaired.exit_code == 0, repaired.output
    assert current_champion(client, name) is None
