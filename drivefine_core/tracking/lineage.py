"""Lineage of a stage run or a registered model: git state, the hashes DVC computed, a data digest.

The hashes are DVC's own, never recomputed here (this library does not import DVC): a stage passes
in those DVC computed for its deps (stages/_common.py asks DVC), and the registry reads dvc.lock.
One tag scheme for both: `dvc.<stage>.<path>` = the md5 DVC records for that path of that stage.
A folder DVC does not hash alone (one split of a store) is identified by its manifests.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import yaml

SECRET_PATTERN = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.IGNORECASE)


def is_secret(name: str) -> bool:
    return bool(SECRET_PATTERN.search(name))


def git_state(repo_root: Path) -> tuple[str, bool]:
    """(commit sha or "unknown", dirty flag) of the repository holding repo_root."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_root, capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, bool(status.strip())


def dvc_tags(stage: str, hashes: dict[str, str]) -> dict[str, str]:
    """The one tag scheme: `dvc.<stage>.<path>` = md5."""
    return {f"dvc.{stage}.{path}": md5 for path, md5 in hashes.items()}


def lock_hashes(lock_file: str | Path = "dvc.lock") -> dict[str, dict[str, str]]:
    """{stage: {path: md5}} for the deps and outs dvc.lock records (empty without a dvc.lock)."""
    path = Path(lock_file)
    lock = (yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.exists() else {}
    return {stage: {item["path"]: item["md5"] for item in entry.get("deps", []) + entry.get("outs", []) if "md5" in item}
            for stage, entry in lock.items()}


def manifests_digest(*paths: str | Path) -> str:
    """sha256 over small index files (a store's manifest names every part's content): the identity of a
    data folder without reading the folder."""
    h = hashlib.sha256()
    for p in map(Path, paths):
        h.update(p.read_bytes() if p.is_file() else b"missing:" + str(p).encode())
    return h.hexdigest()


def data_digest(hashes: dict[str, str], code_suffixes: tuple[str, ...] = (".py",)) -> str:
    """One sha256 over the hashes of the data (non-code) dependencies, order-independent."""
    data = {k: v for k, v in sorted(hashes.items()) if not k.endswith(code_suffixes)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
