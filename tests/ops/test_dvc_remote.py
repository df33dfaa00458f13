"""The DVC remote on S3 (moto): configured in .dvc/config.local only, push, then pull into a fresh clone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import GIT, sh

from drivefine_core.ops.params import REMOTE_URL_ENV, DvcRemoteParams
from flows import dvc_remote

pytestmark = pytest.mark.integration


def _local_config(repo: Path) -> dict[str, Any]:
    """.dvc/config.local as DVC itself reads it."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return r.config.load_one("local")


def test_remote_goes_to_config_local_with_endpoint_and_no_credentials(git_dvc_repo, s3_bucket, s3_env):
    before = (git_dvc_repo / ".dvc" / "config").read_text()
    remote = dvc_remote.configure_remote(git_dvc_repo, DvcRemoteParams(url=f"s3://{s3_bucket}/dvc"))
    assert remote is not None and remote.endpoint_url == s3_env
    cfg = _local_config(git_dvc_repo)
    assert cfg["remote"]["s3"]["url"] == f"s3://{s3_bucket}/dvc"
    assert cfg["remote"]["s3"]["endpointurl"] == s3_env
    assert cfg["core"]["remote"] == "s3"
    text = (git_dvc_repo / ".dvc" / "config.local").read_text()
    assert "testing" not in text and "secret" not in text.lower()  # the credentials stay in the environment
    assert (git_dvc_repo / ".dvc" / "config").read_text() == before  # the committed config is untouched
    status = sh(git_dvc_repo, "git", "status", "--porcelain", "--ignored", ".dvc")
    assert "config.local" not in status.replace("!! .dvc/config.local", "")  # git-ignored, never committed


def test_remote_url_from_env_and_no_url_keeps_the_repo_default(git_dvc_repo, s3_bucket, monkeypatch):
    assert dvc_remote.configure_remote(git_dvc_repo, DvcRemoteParams()) is None
    assert not (git_dvc_repo / ".dvc" / "config.local").exists()
    monkeypatch.setenv(REMOTE_URL_ENV, f"s3://{s3_bucket}/from-env/")
    remote = dvc_remote.configure_remote(git_dvc_repo, DvcRemoteParams(name="minio", make_default=False))
    assert remote.url == f"s3://{s3_bucket}/from-env"
    cfg = _local_config(git_dvc_repo)
    assert cfg["remote"]["minio"]["url"] == f"s3://{s3_bucket}/from-env"
    assert "remote" not in cfg.get("core", {})
    monkeypatch.setenv(REMOTE_URL_ENV, "dvc-remote/not-s3")
    with pytest.raises(dvc_remote.DvcRemoteError, match=REMOTE_URL_ENV):
        dvc_remote.configure_remote(git_dvc_repo, DvcRemoteParams())


def test_push_then_pull_into_a_fresh_clone(git_dvc_repo, s3_bucket, s3_client, tmp_path):
    data = git_dvc_repo / "incoming" / "logs"
    (data / "a").mkdir(parents=True)
    payload = {"a/one.pkl": b"\x80\x04first", "two.pkl": bytes(range(256)) * 40}
    for rel, blob in payload.items():
        (data / rel).write_bytes(blob)
    params = DvcRemoteParams(url=f"s3://{s3_bucket}/dvc-store")
    dvc_remote.configure_remote(git_dvc_repo, params)
    sha = dvc_remote.track_and_commit(git_dvc_repo, "incoming/logs", "data: v1")
    assert sha and len(sha) == 40
    assert dvc_remote.push(git_dvc_repo, ["incoming/logs"]) == 3  # two files + the directory listing
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="dvc-store/")["Contents"]]
    assert len(keys) == 3 and all(k.startswith("dvc-store/files/md5/") for k in keys)

    clone = tmp_path / "clone"
    sh(tmp_path, *GIT, "clone", "-q", str(git_dvc_repo), str(clone))
    assert not (clone / "incoming" / "logs").exists()
    with pytest.raises(dvc_remote.DvcRemoteError, match="dvc pull"):
        dvc_remote.pull(clone, ["incoming/logs"])  # the clone has no remote yet: a named error
    dvc_remote.configure_remote(clone, params)
    assert dvc_remote.pull(clone, ["incoming/logs"]) >= 2
    for rel, blob in payload.items():
        assert (clone / "incoming" / "logs" / rel).read_bytes() == blob
