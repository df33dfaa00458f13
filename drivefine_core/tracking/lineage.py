"""Lineage of a stage run: git state, DVC-compatible hashes of its dependencies, a data digest.

The hashes are computed the way DVC 3 computes them (md5 of a file's bytes; for a directory, md5 of
the sorted JSON listing of its files plus ".dir"), so a run's tags can be matched against dvc.lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import yaml

SECRET_PATTERN = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.IGNORECASE)
_CHUNK = 1 << 20


def is_secret(name: str) -> bool:
    return bool(SECRET_PATTERN.search(name))


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def dvc_md5(path: Path) -> str:
    """DVC 3's md5 of a file, or of a directory (with the `.dir` suffix)."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    entries = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != ".dvc"]
        for name in files:
            full = Path(root) / name
            entries.append({"md5": file_md5(full), "relpath": full.relative_to(path).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"


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


def stage_deps(repo_root: Path, stage: str) -> list[str]:
    """The deps a stage declares in dvc.yaml (paths relative to the repository root)."""
    dvc_yaml = Path(repo_root) / "dvc.yaml"
    if not dvc_yaml.exists():
        return []
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    if stage not in stages:
        raise KeyError(f"{dvc_yaml}: no stage named {stage!r} (stages: {', '.join(stages)})")
    wdir = stages[stage].get("wdir", ".")
    return [os.path.normpath(os.path.join(wdir, d)) for d in stages[stage].get("deps", [])]


def dep_hashes(repo_root: Path, deps: list[str]) -> dict[str, str]:
    out = {}
    for dep in deps:
        p = Path(repo_root) / dep
        out[dep] = dvc_md5(p) if p.exists() else "missing"
    return out


def data_digest(hashes: dict[str, str], code_suffixes: tuple[str, ...] = (".py",)) -> str:
    """One sha256 over the hashes of the data (non-code) dependencies, order-independent."""
    data = {k: v for k, v in sorted(hashes.items()) if not k.endswith(code_suffixes)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
