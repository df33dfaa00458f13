"""The DVC side of the flows: stage order from the graph, reproduce one stage, read its metrics."""

from __future__ import annotations

import json
import os
import sys
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


def reproduce(repo_root: Path, stage: str, force: bool = False) -> bool:
    """Reproduce one stage (not its upstream); True when it ran, False when DVC skipped it."""
    from dvc.repo import Repo

    venv_env()
    with Repo(str(repo_root)) as repo:
        ran = repo.reproduce(targets=[stage], single_item=True, force=force)
    return bool(ran)


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
