"""What every stage script shares: load params.yaml, open the stage's MLflow run, exit codes.

A stage exits with EXIT_TRANSIENT when it failed for a reason worth retrying (a tracking server or
S3 endpoint that did not answer); the Prefect flow retries only those.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivefine_core.config import Params, ParamsError, load_params
from drivefine_core.storage.local import write_file_atomic
from drivefine_core.storage.uri import is_transient

EXIT_TRANSIENT = 75  # EX_TEMPFAIL


def write_json(path: str | Path, data: Any) -> None:
    """Atomic JSON write (temp name, then rename) so DVC never caches half a file."""
    write_file_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


@functools.cache
def dvc_dep_hashes(stage: str) -> dict[str, str]:
    """{dep path: md5} of the stage's deps as DVC computes them: `dvc repro` computed them when it checked
    the stage and keeps them in its state cache (keyed by inode, size and mtime), so nothing is read again.
    Empty outside a DVC repository."""
    from dvc.dependency.param import ParamsDependency
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        with Repo(".") as repo:
            (spec,) = repo.stage.collect(stage)
            deps = [d for d in spec.deps if not isinstance(d, ParamsDependency)]  # params are logged as params
            return {str(d.def_path): str(d.get_hash().value or "") if d.exists else "missing" for d in deps}
    except NotDvcRepoError:
        return {}


def save_trained(stage: str, planner: Any, variant: str, metrics: dict[str, float]) -> None:
    """models/<stage>/<variant>/ from the trained planner; its resume checkpoints are then obsolete."""
    import shutil

    planner.cpu().save(Path("models") / stage / variant)
    shutil.rmtree(Path("data/checkpoints") / stage / variant, ignore_errors=True)
    print(f"{stage} {variant}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(variant)))


def open_run(stage: str, params: Params, section: Any):
    from drivefine_core.tracking.runs import stage_run  # MLflow: imported once a stage runs, not on import

    return stage_run(stage, section, default_uri=params.tracking.default_tracking_uri,
                     experiment=params.tracking.experiment, dep_hashes=dvc_dep_hashes(stage),
                     http=params.tracking)


def open_main_run(stage: str, params: Params, section: Any, is_main: bool):
    """The stage's MLflow run in the main process of a launch; nothing in the others."""
    return open_run(stage, params, section) if is_main else contextlib.nullcontext()


def load_params_or_exit() -> Params:
    try:
        return load_params("params.yaml")
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def main(stage_main: Callable[[Params], None]) -> None:
    """Run a stage's main with params.yaml, mapping failures to exit codes the flow understands."""
    from drivefine_core.storage.arrow_memory import use_fast_arrow_pool

    use_fast_arrow_pool()
    params = load_params_or_exit()
    try:
        stage_main(params)
    except Exception as exc:
        if not is_transient(exc):
            raise
        print(f"transient failure (retryable): {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(EXIT_TRANSIENT)
