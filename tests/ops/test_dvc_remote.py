"""The DVC remote on S3 (moto): handed to DVC in memory per run (no config file written), push, pull into a
fresh clone, and a push to a dead endpoint that leaves the configuration as it was."""

from __future__ import annotations

import pytest

from drivefine_core.ops.params import REMOTE_URL_ENV, DvcRemoteParams
from flows import dvc_remote
from tests.ops.shell import GIT, sh

pytestmark = pytest.mark.integration


def test_run_remote_is_in_memory_only_with_endpoint_and_no_credentials(git_dvc_repo, s3_bucket, s3_env):
    before = (git_dvc_repo / ".dvc" / "config").read_text()
    remote = dvc_remote.run_remote(DvcRemoteParams(url=f"s3://{s3_bucket}/dvc"))
    assert remote is not None and remote.endpoint_url == s3_env
    with dvc_remote.open_repo(git_dvc_repo, remote) as repo:  # what DVC sees during the run
        assert repo.config["remote"]["s3"]["url"] == f"s3://{s3_bucket}/dvc"
        assert repo.config["remote"]["s3"]["endpointurl"] == s3_env
        assert repo.config["core"]["remote"] == "s3"
    assert "testing" not in repr(remote.dvc_config()) and "secret" not in repr(remote.dvc_config()).lower()
    assert (git_dvc_repo / ".dvc" / "config").read_text() == before  # the committed config is untouched
    assert not (git_dvc_repo / ".dvc" / "config.local").exists()  # and nothing is persisted per machine


def test_remote_url_from_env_and_no_url_keeps_the_repo_default(git_dvc_repo, s3_bucket, monkeypatch):
    assert dvc_remote.run_remote(DvcRemoteParams()) is None
    monkeypatch.setenv(REMOTE_URL_ENV, f"s3://{s3_bucket}/from-env/")
    remote = dvc_remote.run_remote(DvcRemoteParams(name="minio", make_default=False))
    assert remote is not None and remote.url == f"s3://{s3_bucket}/from-env"
    with dvc_remote.open_repo(git_dvc_repo, remote) as repo:
        assert repo.config["remote"]["minio"]["url"] == f"s3://{s3_bucket}/from-env"
        assert "remote" not in repo.config["core"]
    monkeypatch.setenv(REMOTE_URL_ENV, "dvc-remote/not-s3")
    with pytest.raises(dvc_remote.DvcRemoteError, match=REMOTE_URL_ENV):
        dvc_remote.run_remote(DvcRemoteParams())


def test_push_to_a_dead_endpoint_leaves_the_config_and_the_default_remote_as_they_were(
        git_dvc_repo, s3_bucket, s3_server, s3_env, monkeypatch, tmp_path):
    """A run whose S3 push fails (endpoint down) must not leave S3 as the default: the next plain push works."""
    from dvc.repo import Repo

    local_store = tmp_path / "local-store"
    with Repo(str(git_dvc_repo)) as repo, repo.config.edit("repo") as conf:  # the repository's own default
        conf["remote"]["local"] = {"url": str(local_store)}
        conf["core"]["remote"] = "local"
    user_local = git_dvc_repo / ".dvc" / "config.local"
    user_local.write_text("[core]\n    autostage = true\n")  # what the user keeps per machine
    before = {p: p.read_bytes() for p in (user_local, git_dvc_repo / ".dvc" / "config")}
    (git_dvc_repo / "incoming" / "logs").mkdir(parents=True)
    (git_dvc_repo / "incoming" / "logs" / "one.pkl").write_bytes(b"\x80\x04log")
    dvc_remote.track_and_commit(git_dvc_repo, "incoming/logs", "data: v1")

    remote = dvc_remote.run_remote(DvcRemoteParams(url=f"s3://{s3_bucket}/dvc"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the outage is reported at once, not after boto's retries
    s3_server.stop()
    try:
        with pytest.raises(dvc_remote.DvcRemoteError, match=rf"dvc push .* to remote s3 \(s3://{s3_bucket}/dvc\)"):
            dvc_remote.push(git_dvc_repo, ["incoming/logs"], remote)
    finally:
        s3_server.start()
    assert {p: p.read_bytes() for p in before} == before  # config.local and config exactly as they were
    assert dvc_remote.push(git_dvc_repo, ["incoming/logs"]) == 2  # the next plain push: the local default
    assert len([p for p in local_store.rglob("*") if p.is_file()]) == 2


def test_push_then_pull_into_a_fresh_clone(git_dvc_repo, s3_bucket, s3_client, tmp_path):
    data = git_dvc_repo / "incoming" / "logs"
    (data / "a").mkdir(parents=True)
    payload = {"a/one.pkl": b"\x80\x04first", "two.pkl": bytes(range(256)) * 40}
    for rel, blob in payload.items():
        (data / rel).write_bytes(blob)
    remote = dvc_remote.run_remote(DvcRemoteParams(url=f"s3://{s3_bucket}/dvc-store"))
    sha = dvc_remote.track_and_commit(git_dvc_repo, "incoming/logs", "data: v1")
    assert sha and len(sha) == 40
    assert dvc_remote.push(git_dvc_repo, ["incoming/logs"], remote) == 3  # two files + the directory listing
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="dvc-store/")["Contents"]]
    assert len(keys) == 3 and all(k.startswith("dvc-store/files/md5/") for k in keys)

    clone = tmp_path / "clone"
    sh(tmp_path, *GIT, "clone", "-q", str(git_dvc_repo), str(clone))
    assert not (clone / "incoming" / "logs").exists()
    with pytest.raises(dvc_remote.DvcRemoteError, match="dvc pull"):
        dvc_remote.pull(clone, ["incoming/logs"])  # without the run's remote the clone has none: a named error
    assert dvc_remote.pull(clone, ["incoming/logs"], remote) >= 2
    for rel, blob in payload.items():
        assert (clone / "incoming" / "logs" / rel).read_bytes() == blob
