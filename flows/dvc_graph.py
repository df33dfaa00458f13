"""The DVC side of the flows: stage order from the graph, reproduce one stage, read its metrics."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from drivefine_core.config import flatten


def venv_env() -> None:
    """Make the stage commands (`python -m stages.x`) find this interpreter first on PATH."""
    bindir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def stage_order(repo_root: Path) -> list[str]:
    """Pipeline stages of dvc.yaml in dependency order (DVC's graph: an edge runs from a stage to
    the stage whose outputs it reads)."""
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        graph = repo.index.graph
        order = list(nx.topological_sort(graph.reverse(copy=True)))
        return [s.name for s in order if getattr(s, "name", None) and s.path_in_repo.endswith("dvc.yaml")]


def select_stages(repo_root: Path, stages: list[str] | None) -> list[str]:
    """The stages to run, in graph order: all of them, or those named (an unknown name is an error)."""
    order = stage_order(repo_root)
    unknown = sorted(set(stages or []) - set(order))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has: {', '.join(order)}")
    return [s for s in order if not stages or s in stages]


def stage_states(repo_root: Path) -> dict[str, str]:
    """'up to date' or 'changed' for every stage (what `dvc status` says)."""
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        changed = repo.status()
    return {name: ("changed" if name in changed else "up to date") for name in stage_order(repo_root)}


@dataclass(eq=False)
class StageFailed(Exception):
    """A stage command exited non-zero with `exit_code` (fields have defaults: Prefect unpickles it)."""

    stage: str = ""
    exit_code: int = 0

    def __str__(self) -> str:
        return f"stage {self.stage}: its command exited with {self.exit_code}"


def _keep_exit_status() -> None:
    """DVC's runner keeps a failed command's status only in its error's text: make it raise a subclass keeping it."""
    from dvc.stage import run

    class CmdFailed(run.StageCmdFailedError):
        def __init__(self, cmd: str, status: int | None = None) -> None:
            super().__init__(cmd, status)
            self.status = status

    if run.StageCmdFailedError.__name__ != "CmdFailed":
        run.StageCmdFailedError = CmdFailed


def reproduce(repo_root: Path, stage: str, force: bool = False) -> bool:
    """Reproduce one stage (not its upstream): True when it ran, False when skipped, StageFailed when it failed."""
    from dvc.repo import Repo

    venv_env()
    _keep_exit_status()
    try:
        with Repo(str(repo_root)) as repo:
            return bool(repo.reproduce(targets=[stage], single_item=True, force=force))
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and type(cause).__name__ != "CmdFailed":
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise StageFailed(stage, int(cause.status)) from exc  # type: ignore[attr-defined]


def stage_metrics(repo_root: Path, stage: str) -> dict[str, float]:
    """Numeric values of the metrics files the stage declares, flattened (`file_stem.key`)."""
    spec = (yaml.safe_load((repo_root / "dvc.yaml").read_text()) or {})["stages"][stage]
    out: dict[str, float] = {}
    for entry in spec.get("metrics", []):
        path = repo_root / (next(iter(entry)) if isinstance(entry, dict) else entry)
        if not path.exists():
            continue
        data: Any = json.loads(path.read_text())
        for key, value in flatten(data).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = float(value)
    return out
