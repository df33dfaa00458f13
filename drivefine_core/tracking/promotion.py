"""The promotion gate: a candidate becomes `champion` only if it beats the current champion.

Rules (params.promotion): the primary metric (EPDMS v2 or PDMS v1) must exceed the champion's by more
than `min_gain`, and NC and DAC (the multipliers that stand for safety) may not drop by more than their
tolerance. Scores are compared only when both were measured on the same test split (same digest).

The gate never guesses: a score that is not a finite number (NaN, inf) on either side refuses with a
reason, and a `champion` alias that names a version the registry no longer has raises
ChampionUnreadable (the register stage records it as a refusal that says how to repair the alias); it
is never read as "no champion yet". A registry that cannot be reached is an error, not a decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

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

    @property
    def decision(self) -> str:
        return "promoted" if self.promote else "refused"

    def as_tags(self) -> dict[str, str]:
        return {"gate.decision": self.decision, "gate.reason": self.reason[:5000],
                "gate.compared_with": self.champion_version or "none"}


class ChampionUnreadable(RuntimeError):
    """The registry has a champion alias, but the version it names cannot be read; `repair` says how to fix it."""

    def __init__(self, model: str, alias: str, version: str, why: str) -> None:
        self.model, self.alias, self.version = model, alias, version
        self.repair = repair_hint(model, alias)
        super().__init__(f"registered model {model!r}: alias {alias!r} points at version {version}, which {why}. "
                         f"Repair: {self.repair}")


def repair_hint(model: str, alias: str = CHAMPION) -> str:
    return (f"delete the dangling alias with `drivefine delete-alias {alias}` (or in Python: "
            f"MlflowClient().delete_registered_model_alias({model!r}, {alias!r})), or point it at a sound version "
            f"with MlflowClient().set_registered_model_alias({model!r}, {alias!r}, <version>)")


def _not_finite(scores: dict[str, float], keys: tuple[str, ...]) -> list[str]:
    bad = []
    for key in keys:
        if key in scores:
            try:
                ok = math.isfinite(float(scores[key]))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad.append(f"{key}={scores[key]!r}"[:80])
    return bad


def _safety_keys(primary: str) -> tuple[str, str]:
    prefix = primary.split("/")[0]  # keep v1 with v1 and v2 with v2
    return f"{prefix}/nc", f"{prefix}/dac"


def decide(candidate: dict[str, float], champion: dict[str, float] | None, params: PromotionParams,
           champion_version: str | None = None) -> GateDecision:
    primary = params.primary_metric
    if primary not in candidate:
        return GateDecision(False, f"candidate has no {primary} score", candidate, champion, champion_version)
    compared = (primary, *_safety_keys(primary))
    bad = _not_finite(candidate, compared)
    if bad:
        return GateDecision(False, f"candidate score not a finite number: {', '.join(bad)}; not promoted "
                            "(an evaluation that produced it is broken)", candidate, champion, champion_version)
    bad = _not_finite(champion or {}, compared)
    if bad:
        return GateDecision(False, f"champion v{champion_version} score not a finite number: {', '.join(bad)}; "
                            "cannot compare, not promoted. Repair: point the champion alias at a version with "
                            f"finite scores, or delete it (`drivefine delete-alias {CHAMPION}`) so that the next "
                            "candidate is judged alone", candidate, champion, champion_version)
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


def _missing(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def resolve_alias(client: MlflowClient, model: str, alias: str = CHAMPION) -> str | None:
    """The version an alias names; None when the model or the alias does not exist.

    ChampionUnreadable when the alias names a version that is gone (or never finished registering);
    any other registry error (server down, no permission) propagates.
    """
    try:
        registered = client.get_registered_model(model)
    except MlflowException as exc:
        if _missing(exc):
            return None  # no model registered yet: truly no champion
        raise
    aliases = {str(k): str(v) for k, v in (registered.aliases or {}).items()}
    if alias not in aliases:
        return None
    version = aliases[alias]
    try:
        mv = client.get_model_version(model, version)
    except MlflowException as exc:
        if _missing(exc):
            raise ChampionUnreadable(model, alias, version, "does not exist (deleted or lost)") from None
        raise
    status = str(getattr(mv, "status", "READY") or "READY")
    if status != "READY":
        raise ChampionUnreadable(model, alias, version, f"is not ready (status {status})")
    return version


def current_champion(client: MlflowClient, model: str) -> str | None:
    """The champion's version; None only when there is none (see resolve_alias for the errors)."""
    return resolve_alias(client, model, CHAMPION)


def apply_decision(client: MlflowClient, model: str, version: str, decision: GateDecision) -> GateDecision:
    """Record the decision on the model version and move the champion alias if it says so.

    Two flows racing: each decided against the champion it saw. Right before moving the alias the
    champion is read again; if it changed meanwhile, this candidate was not compared with the new
    champion, so it is refused (the next run compares again). The read-then-set window is not atomic
    (the MLflow registry has no compare-and-set); it is kept to two calls.
    """
    try:
        now = current_champion(client, model)
    except ChampionUnreadable as exc:
        now = None
        if decision.promote:
            decision = GateDecision(False, f"champion became unreadable while deciding: {exc}", decision.candidate,
                                    decision.champion, decision.champion_version, decision.checks)
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


def run_gate(client: MlflowClient, model: str, version: str, candidate: dict[str, float], params: PromotionParams,
             champion_scores: Callable[[str], dict[str, float]]) -> GateDecision:
    """Decide on a registered candidate version and record the decision (apply_decision).

    champion_scores(version) gives the champion's scores on the candidate's split. A champion alias that
    cannot be read gives a refusal naming the repair; a registry that cannot be reached raises.
    """
    try:
        champ = current_champion(client, model)
    except ChampionUnreadable as exc:
        decision = refusal(candidate, exc)
    else:
        champ_scores = champion_scores(champ) if champ and champ != version else None
        decision = decide(candidate, champ_scores, params, champ)
    return apply_decision(client, model, version, decision)


def refusal(candidate: dict[str, float], exc: ChampionUnreadable) -> GateDecision:
    """The gate's answer when the champion cannot be read: refused, with the reason and the repair."""
    return GateDecision(False, f"champion cannot be read, not promoted: {exc}", candidate, None, exc.version)


def decision_record(decision: GateDecision) -> dict:
    return {"decision": decision.decision, **asdict(decision)}
