"""ingest(): new logs from moto S3 into a DVC-tracked folder, one git commit per data version, dvc push."""

from __future__ import annotations

import json
import pickle

import pytest
import yaml

from drivefine_core.ops.params import DvcRemoteParams, IngestLogsParams
from flows import dvc_remote
from flows.ingest_new_logs import MANIFEST, ingest, read_manifest
from tests.ops.shell import GIT, sh

pytestmark = pytest.mark.integration

DEST = "incoming/navsim_logs"


def _put_log(client, bucket: str, key: str, token: str) -> bytes:
    blob = pickle.dumps([{"token": token, "timestamp": i} for i in range(3)])
    client.put_object(Bucket=bucket, Key=key, Body=blob)
    return blob


def _dvc_versions(repo) -> list[dict]:
    """The .dvc file at every commit that changed it, newest first."""
    shas = sh(repo, "git", "log", "--format=%H", "--", f"{DEST}.dvc").split()
    return [yaml.safe_load(sh(repo, "git", "show", f"{sha}:{DEST}.dvc"))["outs"][0] for sha in shas]


@pytest.fixture
def setup(git_dvc_repo, s3_bucket, s3_client):
    s3_client.create_bucket(Bucket=f"{s3_bucket}-dvc")
    remote = dvc_remote.run_remote(DvcRemoteParams(url=f"s3://{s3_bucket}-dvc/store"))
    blobs = {
        "trainval/log_a.pkl": _put_log(s3_client, s3_bucket, "navsim_logs/trainval/log_a.pkl", "a"),
        "test/log_b.pkl": _put_log(s3_client, s3_bucket, "navsim_logs/test/log_b.pkl", "b"),
    }
    s3_client.put_object(Bucket=s3_bucket, Key="navsim_logs/trainval/README.txt", Body=b"not a log")
    s3_client.put_object(Bucket=s3_bucket, Key="navsim_logs/trainval/deeper/log_x.pkl", Body=b"wrong depth")
    s3_client.put_object(Bucket=s3_bucket, Key="navsim_logs_old/trainval/log_z.pkl", Body=b"other prefix")
    params = IngestLogsParams(bucket=s3_bucket, prefix="navsim_logs", dest_dir=DEST)
    return git_dvc_repo, s3_bucket, params, blobs, remote


def test_first_run_takes_all_second_only_the_new_one(setup, s3_client):
    repo, bucket, params, blobs, remote = setup
    first = ingest(repo, params, remote=remote)
    assert sorted(first.new) == sorted(blobs) and first.seen == 0
    assert first.rejected == ["navsim_logs/trainval/deeper/log_x.pkl"]
    for rel, blob in blobs.items():
        assert (repo / DEST / rel).read_bytes() == blob
    assert first.commit == sh(repo, "git", "rev-parse", "HEAD").strip()
    assert first.pushed == len(blobs) + 2  # logs + manifest + the directory listing

    blobs["trainval/log_c.pkl"] = _put_log(s3_client, bucket, "navsim_logs/trainval/log_c.pkl", "c")
    second = ingest(repo, params, remote=remote)
    assert second.new == ["trainval/log_c.pkl"] and second.seen == 2
    assert second.commit == sh(repo, "git", "rev-parse", "HEAD").strip() != first.commit
    assert sorted(read_manifest(repo / DEST)) == sorted(blobs)

    versions = _dvc_versions(repo)
    assert len(versions) == 2 and versions[0]["md5"] != versions[1]["md5"]
    assert [v["nfiles"] for v in versions] == [4, 3]  # newest first; the manifest is one of the files
    assert sh(repo, "git", "status", "--porcelain").strip() == ""  # nothing left uncommitted

    # every file of both versions is on the DVC remote on the same S3
    remote_keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=f"{bucket}-dvc")["Contents"]}
    for v in versions:
        md5 = v["md5"].removesuffix(".dir")
        assert f"store/files/md5/{md5[:2]}/{md5[2:]}.dir" in remote_keys

    third = ingest(repo, params, remote=remote)
    assert third.new == [] and third.seen == 3 and third.commit is None
    assert len(_dvc_versions(repo)) == 2


def test_rewritten_log_is_taken_again_and_split_filter_applies(setup, s3_client):
    repo, bucket, params, _, remote = setup
    only_test = params.model_copy(update={"splits": ["test"]})
    assert ingest(repo, only_test, remote=remote).new == ["test/log_b.pkl"]
    new_blob = _put_log(s3_client, bucket, "navsim_logs/test/log_b.pkl", "b-fixed")
    again = ingest(repo, only_test, remote=remote)
    assert again.new == ["test/log_b.pkl"]
    assert (repo / DEST / "test/log_b.pkl").read_bytes() == new_blob
    manifest = json.loads((repo / DEST / MANIFEST).read_text())
    assert manifest["source"] == f"s3://{bucket}/navsim_logs"
    assert manifest["logs"]["test/log_b.pkl"]["size"] == len(new_blob)


def test_fresh_clone_pulls_the_folder_and_takes_nothing_twice(setup, s3_client, tmp_path):
    repo, bucket, params, blobs, remote = setup
    ingest(repo, params, remote=remote)
    clone = tmp_path / "worker"
    sh(tmp_path, *GIT, "clone", "-q", str(repo), str(clone))
    report = ingest(clone, params, remote=remote)
    assert report.new == [] and report.seen == len(blobs) and report.commit is None
    assert (clone / DEST / "trainval/log_a.pkl").read_bytes() == blobs["trainval/log_a.pkl"]


def test_bad_manifest_is_a_named_error(setup):
    repo, _, params, _, remote = setup
    (repo / DEST).mkdir(parents=True)
    (repo / DEST / MANIFEST).write_text('{"entries": []}')
    with pytest.raises(ValueError, match=rf"{MANIFEST}.*'logs'"):
        ingest(repo, params, remote=remote)


def test_a_run_interrupted_before_the_commit_is_recorded_by_the_next(setup, monkeypatch):
    repo, _, params, blobs, remote = setup

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("worker stopped")  # after the downloads and the manifest, before git

    with monkeypatch.context() as m:
        m.setattr(dvc_remote, "track_and_commit", crash)
        with pytest.raises(KeyboardInterrupt):
            ingest(repo, params, remote=remote)
    assert sorted(read_manifest(repo / DEST)) == sorted(blobs)  # the data is there, unrecorded
    again = ingest(repo, params, remote=remote)
    assert again.new == [] and again.recovered and again.commit
    assert _dvc_versions(repo)[0]["nfiles"] == len(blobs) + 1
    assert ingest(repo, params, remote=remote).recovered is False  # and only once
