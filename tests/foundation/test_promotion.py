import mlflow
import pytest
from mlflow.tracking import MlflowClient

from drivefine_core.pipeline_params import PromotionParams
from drivefine_core.tracking.promotion import apply_decision, current_champion, decide
from tests.servers import local_tracking

P = PromotionParams(primary_metric="v2/epdms", min_gain=0.01, max_regression_nc=0.01, max_regression_dac=0.01)
CHAMP = {"v2/epdms": 0.80, "v2/nc": 0.97, "v2/dac": 0.95}


def test_first_candidate_becomes_champion():
    assert decide({"v2/epdms": 0.1}, None, P).promote


def test_better_candidate_is_promoted():
    d = decide({"v2/epdms": 0.85, "v2/nc": 0.97, "v2/dac": 0.95}, CHAMP, P, "1")
    assert d.promote and "all checks passed" in d.reason


@pytest.mark.parametrize("cand, why", [
    ({"v2/epdms": 0.805, "v2/nc": 0.97, "v2/dac": 0.95}, "v2/epdms gain"),   # gain below min_gain
    ({"v2/epdms": 0.90, "v2/nc": 0.90, "v2/dac": 0.95}, "v2/nc drop"),       # safety regression
    ({"v2/epdms": 0.90, "v2/nc": 0.97, "v2/dac": 0.90}, "v2/dac drop"),
])
def test_worse_or_unsafe_candidate_is_refused(cand, why):
    d = decide(cand, CHAMP, P, "1")
    assert not d.promote and why in d.reason


def test_missing_primary_metric_is_refused():
    d = decide({"v1/pdms": 0.9}, CHAMP, P, "1")
    assert not d.promote and "no v2/epdms" in d.reason


class _Const(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def test_racing_promotions_cannot_both_win(tmp_path):
    uri = local_tracking(tmp_path, "gate")
    client = MlflowClient(uri)
    versions = []
    for _ in range(3):
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="m", python_model=_Const(), registered_model_name="planner")
            versions.append(str(info.registered_model_version))
    first = apply_decision(client, "planner", versions[0], decide(CHAMP, None, P))
    assert first.promote and current_champion(client, "planner") == versions[0]
    better = {"v2/epdms": 0.9, "v2/nc": 0.97, "v2/dac": 0.95}
    # Both candidates were judged against v1, then promote one after the other.
    a = decide(better, CHAMP, P, versions[0])
    b = decide(better, CHAMP, P, versions[0])
    assert apply_decision(client, "planner", versions[1], a).promote
    refused = apply_decision(client, "planner", versions[2], b)
    assert not refused.promote and "champion moved" in refused.reason
    assert current_champion(client, "planner") == versions[1]
    mv = client.get_model_version("planner", versions[2])
    assert mv.tags["gate.decision"] == "refused" and "champion moved" in mv.description


def test_missing_scores_on_either_side_refuse():
    d = decide({"v2/epdms": 0.9, "v2/nc": 1.0, "v2/dac": 1.0}, {"v1/pdms": 0.5}, P, "3")
    assert not d.promote and "has no v2/epdms" in d.reason
    d = decide({"v2/epdms": 0.9, "v2/nc": 1.0}, CHAMP, P, "3")
    assert not d.promote and "v2/dac missing on candidate" in d.reason
