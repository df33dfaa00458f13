"""Fixtures of the ops tests: throw-away git + DVC repositories (moto S3 comes from tests/s3_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.shell import GIT, sh  # noqa: F401 - the tests here use them through this module too


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
