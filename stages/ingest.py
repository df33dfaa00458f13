"""Stage ingest: read the logs of the configured source, cut scenes, validate them with Great
Expectations, write data/ingest/scenes/<split>.parquet and a quarantine report for refused logs."""

from __future__ import annotations

from functools import partial

import mlflow

from drivefine_core.data.ingest import ingest
from drivefine_core.executor.core import make_executor
from drivefine_core.validation.scene_checks import validate_log_scenes
from stages._common import main, open_run, write_json
from stages.sources import source_root

OUT = "data/ingest"


def run(params) -> None:
    with open_run("ingest", params, {"data": params.data, "ingest": params.ingest, "validation": params.validation}):
        report = ingest(source_root(params.data), params.data.split_dirs, OUT, params.ingest,
                        validate=partial(validate_log_scenes, params=params.validation),
                        executor=make_executor(params.executor))
        metrics = report.metrics()
        write_json("metrics/ingest.json", metrics)
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(report.quarantine_path)
        mlflow.set_tags({f"data.scenes_digest.{s}": d for s, d in report.scene_digests.items()})
        for q in report.quarantine:
            print(f"quarantined {q.log}: {q.reason} (field {q.field})")
        print(f"ingest: {metrics}")


if __name__ == "__main__":
    main(run)
