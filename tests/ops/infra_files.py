"""Readers of the files under infra/ and prefect.yaml, shared by the ops tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _pool_of(args: list[str]) -> str | None:
    return args[args.index("--pool") + 1] if "--pool" in args else None


def compose_pools() -> set[str]:
    pools = {_pool_of(s.get("command") or []) for s in compose()["services"].values()
             if isinstance(s.get("command"), list)}
    return {p for p in pools if p}


def k8s_pools() -> set[str]:
    pools = set()
    for doc in k8s_docs():
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                pools.add(_pool_of(c.get("args") or []))
    return {p for p in pools if p}
