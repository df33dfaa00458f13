"""`drivefine`: the command line of the pipeline.

    drivefine retrain            run every stage of dvc.yaml through the Prefect flow (skips what is up to date)
    drivefine stages             list the stages in graph order and whether each is up to date
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

# Embedded defaults: no telemetry from Prefect, MLflow or DVC. Set before those packages load.
for _name, _value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                      "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}.items():
    os.environ.setdefault(_name, _value)

app = typer.Typer(help="drivefine: train, evaluate and promote driving planners on NAVSIM-format data.",
                  no_args_is_help=True, add_completion=False)

RepoOpt = Annotated[Path, typer.Option("--repo", help="repository root (holds dvc.yaml and params.yaml)")]


@app.command()
def retrain(
    stage: Annotated[list[str] | None, typer.Option("--stage", "-s", help="run only these stages (repeatable)")] = None,
    force: Annotated[bool, typer.Option(help="re-run stages even when DVC says they are up to date")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Run the retrain flow: the DVC stages in graph order, each logged to MLflow under one parent run.

    Without MLFLOW_TRACKING_URI the runs go to sqlite:///mlflow.db; without PREFECT_API_URL Prefect
    runs in ephemeral mode. Stages whose inputs did not change are skipped.
    """
    from drivefine_core.config import ParamsError, load_params

    try:
        load_params(repo / "params.yaml")
    except ParamsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from flows.retrain import retrain as retrain_flow

    results = retrain_flow(repo_root=str(repo), stages=stage or None, force=force)
    ran = [r.stage for r in results if r.status == "ran"]
    typer.echo(f"done: ran {len(ran)} stage(s), {len(results) - len(ran)} up to date")


@app.command()
def stages(repo: RepoOpt = Path(".")) -> None:
    """List the pipeline's stages in graph order with their state (changed / up to date)."""
    import yaml

    from flows.dvc_graph import stage_states

    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    states = stage_states(repo)
    width = max(map(len, states), default=5)
    for name, state in states.items():
        deps = len(spec[name].get("deps", []))
        outs = len(spec[name].get("outs", [])) + len(spec[name].get("metrics", []))
        typer.echo(f"{name:<{width}}  {state:<10}  {deps} deps, {outs} outs   $ {spec[name]['cmd']}")


if __name__ == "__main__":
    app()
