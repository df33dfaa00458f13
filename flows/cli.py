"""`drivefine`: the command line of the pipeline.

    drivefine retrain            run every stage of dvc.yaml through the Prefect flow (skips what is up to date)
    drivefine stages             list the stages in graph order and whether each is up to date
    drivefine plan --scene TOK   plan one scene with the registry's champion, print and draw it
    drivefine ingest             take new logs from S3 into a new DVC data version, then retrain
    drivefine evaluate-champion  score the registry's champion on the current test split
    drivefine delete-alias NAME  remove a registry alias (e.g. a champion alias naming a lost version)
    drivefine serve              serve the champion over HTTP (MLflow's scoring server, POST /invocations)
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


def _guard_children() -> None:
    """Stage processes and Prefect's temporary server end with this command, even after kill -9."""
    from flows.process_guard import guard_children

    guard_children()


def _check_tracking_server(params) -> None:  # noqa: ANN001 - drivefine_core.config.Params
    """A tracking server that does not answer ends the command with one line naming it, before any stage."""
    from drivefine_core.tracking.runs import TrackingUnreachable, configure, tracking_uri

    if not tracking_uri(params.tracking.default_tracking_uri).startswith(("http://", "https://")):
        return  # a local store (sqlite, files) needs no network
    try:
        configure(params.tracking.default_tracking_uri, params.tracking.experiment, params.tracking)
    except TrackingUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


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
        params = load_params(repo / "params.yaml")
    except ParamsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _check_tracking_server(params)
    _guard_children()
    from flows.retrain import retrain as retrain_flow

    results = retrain_flow(repo_root=str(repo), stages=stage or None, force=force)
    ran = [r.stage for r in results if r.status == "ran"]
    typer.echo(f"done: ran {len(ran)} stage(s), {len(results) - len(ran)} up to date")
    decision = repo / "data/registry/decision.json"
    if decision.exists():
        import json

        d = json.loads(decision.read_text())
        verdict = "champion" if d["promote"] else "not promoted"
        typer.echo(f"registry: {d['model']} v{d['version']} ({d['variant']}): {verdict} - {d['reason']}")
    report = repo / "reports/evaluation/report.md"
    if report.exists():
        typer.echo(f"report: {report} (and report.html beside it)")


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


def _registered_model(repo: Path) -> str:
    """Work in `repo`, point MLflow at its tracking URI (params / MLFLOW_TRACKING_URI), return the model's name."""
    from drivefine_core.config import load_params
    from drivefine_core.tracking.runs import TrackingUnreachable, configure

    os.chdir(repo)
    params = load_params("params.yaml")
    try:
        configure(params.tracking.default_tracking_uri, params.tracking.experiment, params.tracking)
    except TrackingUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return params.tracking.registered_model


@app.command()
def plan(
    scene: Annotated[str, typer.Option("--scene", help="scene token (the current frame's token)")],
    alias: Annotated[str, typer.Option(help="registry alias to plan with")] = "champion",
    out: Annotated[Path, typer.Option(help="folder for the picture")] = Path("reports/plans"),
    repo: RepoOpt = Path("."),
) -> None:
    """Plan one scene with a registered planner (default: the champion), print the 8 poses and draw them."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from drivefine_core.tracking.promotion import ChampionUnreadable, resolve_alias

    name = _registered_model(repo)
    try:  # the alias first: a registry problem is one line, not a traceback
        version = resolve_alias(MlflowClient(), name, alias)
    except ChampionUnreadable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except MlflowException as exc:
        typer.echo(f"error: cannot read {name}@{alias} from the registry: {str(exc).splitlines()[0][:300]}", err=True)
        raise typer.Exit(2) from None
    if version is None:
        typer.echo(f"error: registered model {name!r} has no {alias!r} alias (run `drivefine retrain` first)", err=True)
        raise typer.Exit(2)
    import numpy as np  # the planner's stack loads only once the registry answered

    from drivefine_core.evaluation.agents import reference_plan
    from drivefine_core.evaluation.plan_scene import scene_cache, scene_input
    from drivefine_core.reports.scene_plot import draw_scene

    try:
        frame, split, log = scene_input(scene)
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from None
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    except MlflowException as exc:
        typer.echo(f"error: cannot load {name} v{version} ({alias}): {str(exc).splitlines()[0][:300]}", err=True)
        raise typer.Exit(2) from None
    result = model.predict(frame)
    poses = np.stack([np.asarray(result[c][0], dtype=float) for c in ("x", "y", "heading")], axis=-1)
    typer.echo(f"{name}@{alias} on scene {scene} ({split}, {log}):")
    typer.echo("   t [s]     x [m]     y [m]  heading [rad]")
    for i, (x, y, h) in enumerate(poses):
        typer.echo(f"   {0.5 * (i + 1):4.1f}  {x:8.2f}  {y:8.2f}  {h:10.3f}")
    cache = scene_cache(scene, split, log)
    if cache is not None:
        png = draw_scene(cache, {"planned": poses, "human": cache.human_future,
                                 "pdm_closed": reference_plan(cache)}, out / f"{scene}.png",
                         title=f"{scene}: {name}@{alias}")
        typer.echo(f"drawn: {png}")


@app.command("delete-alias")
def delete_alias(
    alias: Annotated[str, typer.Argument(help="the alias to remove, e.g. champion")],
    repo: RepoOpt = Path("."),
) -> None:
    """Remove an alias of the registered model (the repair for an alias naming a version that is gone)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = _registered_model(repo)
    try:
        MlflowClient().delete_registered_model_alias(name, alias)
    except MlflowException as exc:
        typer.echo(f"error: cannot delete {name}@{alias}: {str(exc).splitlines()[0][:300]}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"deleted alias {alias!r} of {name}")


@app.command()
def serve(
    model: Annotated[str | None, typer.Option("--model", "-m", help="model URI (default: models:/<name>@champion)")] = None,
    port: Annotated[int, typer.Option("--port", "-p")] = 5001,
    host: Annotated[str, typer.Option("--host", "-h")] = "127.0.0.1",
    repo: RepoOpt = Path("."),
) -> None:
    """Serve a registered planner: `mlflow models serve` with this environment's interpreter first on PATH
    (MLflow starts `uvicorn` by name) and the request limits of params ops.serving."""
    import json
    import sys

    from drivefine_core.config import load_params
    from drivefine_core.tracking.planner_pyfunc import LIMITS_ENV
    from drivefine_core.tracking.runs import tracking_uri
    from flows.dvc_graph import venv_env

    name = _registered_model(repo)  # cwd = repo; an unreachable tracking server is one line here
    params = load_params("params.yaml")
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri(params.tracking.default_tracking_uri)  # for models:/ URIs
    os.environ[LIMITS_ENV] = json.dumps(params.ops.serving.model_dump())
    venv_env()
    _guard_children()  # the scoring server's worker ends with this process
    uri = model or f"models:/{name}@champion"
    typer.echo(f"serving {uri} on http://{host}:{port}/invocations", err=True)
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                              "-p", str(port), "-h", host])


@app.command()
def ingest(
    bucket: Annotated[str | None, typer.Option(help="S3 bucket (default: params ops.ingest.bucket)")] = None,
    trigger: Annotated[str | None, typer.Option(help="subflow | deployment | none")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Take new logs from S3 into a new DVC data version (dvc add, git commit, dvc push), then retrain."""
    from flows.ingest_new_logs import ingest_new_logs

    _guard_children()
    r = ingest_new_logs(repo_root=str(repo), bucket=bucket, trigger=trigger)
    typer.echo(f"{len(r['new'])} new log(s), {r['seen']} already seen, commit {r['commit']}")


@app.command("evaluate-champion")
def evaluate_champion_cmd(
    refresh: Annotated[bool, typer.Option(help="first bring the data stages up to date")] = True,
    repo: RepoOpt = Path("."),
) -> None:
    """Score the registry's champion on the current test split; scores go to MLflow and onto the version."""
    from flows.evaluate_champion import evaluate_champion

    _guard_children()
    scores = evaluate_champion(repo_root=str(repo), refresh_data=refresh)
    typer.echo(f"champion: v1/pdms={scores.get('v1/pdms', float('nan')):.4f} "
               f"v2/epdms={scores.get('v2/epdms', float('nan')):.4f}")


if __name__ == "__main__":
    app()
