"""Fixtures of the ops tests: moto S3 (the shared fixture module) and throw-away git + DVC repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from s3_fixtures import s3_bucket, s3_env, s3_server  # noqa: F401 - fixtures used by the tests here

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture
def git_dvc_repo(tmp_path: Path) -> Path:
    """An empty git repository with `dvc init` committed (no remote configured)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    sh(repo, "git", "init", "-q")
    from dvc.repo import Repo

    Repo.init(str(repo)).close()  # in-process: the dvc CLI costs seconds of start-up per call
    with open(repo / ".dvc" / "config", "a") as f:
        f.write("[core]\n    analytics = false\n")
    sh(repo, *GIT, "add", "-A")
    sh(repo, *GIT, "commit", "-qm", "init")
    return repo


@pytest.fixture
def s3_client(s3_env: str):
    import boto3

    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
