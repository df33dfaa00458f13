"""Run one Great Expectations suite over one DataFrame holding all logs, and split the failures by log.

GX takes seconds to import and set up, so a call builds one ephemeral context, one suite and one
validation over every log at once (a `log_name` column), never one per log. GX is imported lazily:
importing drivefine_core.validation stays cheap.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from drivefine_core.storage import write_bytes_atomic

LOG_COLUMN = "log_name"


@dataclass
class ExpectationOutcome:
    type: str
    kwargs: dict[str, Any]
    description: str
    success: bool
    unexpected_count: int
    failing_logs: list[str]
    error: str | None = None

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.type}({args})" + (f" [{self.description}]" if self.description else "")


@dataclass
class ValidationReport:
    suite: str
    rows: int
    logs: list[str]
    by_log: dict[str, list[str]]  # every log; [] = it passed
    expectations: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(not v for v in self.by_log.values()) and all(e.success for e in self.expectations)

    @property
    def failed_logs(self) -> list[str]:
        return sorted(k for k, v in self.by_log.items() if v)

    def metrics(self) -> dict[str, float]:
        """Numbers only, for mlflow.log_metrics."""
        failed = sum(1 for e in self.expectations if not e.success)
        return {"rows": float(self.rows), "logs": float(len(self.logs)), "failed_logs": float(len(self.failed_logs)),
                "failed_expectations": float(failed), "success": float(self.success)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: log it as an MLflow artifact or a metrics file."""
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "logs": len(self.logs),
            "failed_logs": self.failed_logs,
            "by_log": {k: v for k, v in sorted(self.by_log.items())},
            "expectations": [
                {
                    "type": e.type,
                    "kwargs": e.kwargs,
                    "description": e.description,
                    "success": e.success,
                    "unexpected_count": e.unexpected_count,
                    "failing_logs": e.failing_logs,
                    "error": e.error,
                }
                for e in self.expectations
            ],
        }

    def save(self, uri: str) -> None:
        """Write to_dict() as JSON to a local path or s3:// URI, atomically."""
        write_bytes_atomic(uri, json.dumps(self.to_dict(), indent=1, default=_json_default).encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _plain(v: Any) -> Any:
    """GX / numpy values -> JSON-friendly Python values."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


_SKIP_KWARGS = {"batch_id", "result_format", "catch_exceptions", "meta", "rendered_content"}


def run_suite(df: pd.DataFrame, expectations: list[Any], suite_name: str, example_values: int = 3) -> ValidationReport:
    """Validate df (must hold LOG_COLUMN) against the expectations; failures are attributed to the logs of
    the failing rows (table-level failures and errors to every log)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    if LOG_COLUMN not in df.columns:
        raise ValueError(f"{suite_name}: the table has no '{LOG_COLUMN}' column")
    df = df.reset_index(drop=True)
    logs = sorted(df[LOG_COLUMN].astype(str).unique().tolist())
    by_log: dict[str, list[str]] = {name: [] for name in logs}
    report = ValidationReport(suite=suite_name, rows=len(df), logs=logs, by_log=by_log)
    if df.empty:
        return report

    config = DataContextConfig(
        analytics_enabled=False,  # no network calls from a pipeline stage
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    tag = uuid.uuid4().hex[:8]
    batch = ctx.data_sources.add_pandas(f"{suite_name}-{tag}").add_dataframe_asset("table").add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite_name}-{tag}"))
    for e in expectations:
        suite.add_expectation(e)
    validation = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{suite_name}-{tag}", data=batch, suite=suite))
    result = validation.run(batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"})

    log_values = df[LOG_COLUMN].astype(str).to_numpy()
    for r in result.results:
        cfg = r.expectation_config
        kwargs = {k: _plain(v) for k, v in cfg.kwargs.items() if k not in _SKIP_KWARGS}
        raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
        outcome = ExpectationOutcome(
            type=cfg.type,
            kwargs=kwargs,
            description=str(getattr(cfg, "description", None) or (cfg.meta or {}).get("description", "") or ""),
            success=bool(r.success),
            unexpected_count=int(r.result.get("unexpected_count", 0) or 0),
            failing_logs=[],
            error=str(r.exception_info.get("exception_message")) if raised else None,
        )
        report.expectations.append(outcome)
        if r.success:
            continue
        index = r.result.get("unexpected_index_list")
        if raised or not index:
            # Table-level expectation or an error: it concerns every log.
            why = outcome.error or "failed for the whole table"
            outcome.failing_logs = list(logs)
            for name in logs:
                by_log[name].append(f"{outcome.label}: {why}")
            continue
        rows = [int(i) for i in index]
        values = r.result.get("unexpected_list") or [None] * len(rows)
        per_log: dict[str, list[Any]] = {}
        for i, v in zip(rows, values):
            per_log.setdefault(str(log_values[i]), []).append(v)
        outcome.failing_logs = sorted(per_log)
        for name, vals in sorted(per_log.items()):
            examples = [_plain(v) for v in vals[:example_values]]
            by_log[name].append(f"{outcome.label}: {len(vals)} rows, e.g. {examples}")
    return report
