"""The promotion gate: a candidate becomes `champion` only if it beats the current champion.

Rules (params.promotion): the primary metric (EPDMS v2 or PDMS v1) must exceed the champion's by more
than `min_gain`, and NC and DAC (the multipliers that stand for safety) may not drop by more than their
tolerance. Scores are compared only when both were measured on the same test split (same digest).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from drivefine_core.pipeline_params import PromotionParams

CANDIDATE, CHAMPION = "candidate", "champion"


@dataclass
class GateDecision:
    promote: bool
    reason: str
    candidate: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None = None
    checks: dict[str, bool] = field(default_factory=dict)

    def as_tags(self) -> dict[str, str]:
        return {"gate.decision": "promoted" if self.promote else "refused", "gate.reason": self.reason[:5000],
                "gate.compared_with": self.champion_version or "none"}


def _safety_keys(primary: str) -> tuple[str, str]:
    prefix = primary.split("/")[0]  # keep v1 with v1 and v2 with v2
    return f"{prefix}/nc", f"{prefix}/dac"


def decide(candidate: dict[str, float], champion: dict[str, float] | None, params: PromotionParams,
           champion_version: str | None = None) -> GateDecision:
    primary = params.primary_metric
    if primary not in candidate:
        return GateDecision(False, f"candidate has no {primary} score", candidate, champion, champion_version)
    if champion is None:
        return GateDecision(True, f"no champion yet; candidate {primary}={candidate[primary]:.4f}",
                            candidate, None, None, {"no_champion": True})
    if primary not in champion:
        return GateDecision(False, f"champion v{champion_version} has no {primary} score to compare with; "
                            "not promoted (re-score the champion)", candidate, champion, champion_version)
    gain = candidate[primary] - champion[primary]
    checks = {f"{primary} gain {gain:+.4f} > {params.min_gain}": gain > params.min_gain}
    nc, dac = _safety_keys(primary)
    for key, tol in ((nc, params.max_regression_nc), (dac, params.max_regression_dac)):
        if key not in candidate or key not in champion:
            checks[f"{key} missing on {'candidate' if key not in candidate else 'champion'}"] = False
            continue
        drop = champion[key] - candidate[key]
        checks[f"{key} drop {drop:+.4f} <= {tol}"] = drop <= tol
    failed = [name for name, ok in checks.items() if not ok]
    reason = ("all checks passed: " if not failed else "failed: ") + "; ".join(failed or checks)
    return GateDecision(not failed, reason, candidate, champion, champion_version, checks)


def current_champion(client: MlflowClient, model: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model, CHAMPION).version)
    except MlflowException:
        return None


def apply_decision(client: MlflowClient, model: str, version: str, decision: GateDecision) -> GateDecision:
    """Record the decision on the model version and move the champion alias if it says so.

    Two flows racing: each decided against the champion it saw. Right before moving the alias the
    champion is read again; if it changed meanwhile, this candidate was not compared with the new
    champion, so it is refused (the next run compares again). The read-then-set window is not atomic
    (the MLflow registry has no compare-and-set); it is kept to two calls.
    """
    now = current_champion(client, model)
    if decision.promote and now != decision.champion_version:
        decision = GateDecision(False, f"champion moved to v{now} while deciding (compared with "
                                f"v{decision.champion_version}); not promoted", decision.candidate,
                                decision.champion, decision.champion_version, decision.checks)
    if decision.promote:
        client.set_registered_model_alias(model, CHAMPION, version)
    for key, value in decision.as_tags().items():
        client.set_model_version_tag(model, version, key, value)
    client.update_model_version(model, version, description=f"promotion gate: {decision.reason}")
    return decision


def decision_record(decision: GateDecision) -> dict:
    return asdict(decision)
