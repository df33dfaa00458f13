import json
import pickle
import socket

import numpy as np
import pytest
from tests.data.readers_factory import make_log, token, write_log

from drivefine_core.data.ingest import ingest
from drivefine_core.data.params import IngestParams, SceneFilter, SplitParams
from drivefine_core.data.scenes_io import read_scenes, read_scenes_with_meta


def _source(tmp_path):
    root = tmp_path / "navsim"
    write_log(root, "trainval", "log-good-1", make_log(30, "log-good-1"))  # 2 scenes
    write_log(root, "trainval", "log-good-2", make_log(16, "log-good-2"))  # 1 scene
    bad = make_log(30, "log-bad")
    bad[5]["ego2global_translation"] = np.array([np.nan, 0.0, 0.0])
    write_log(root, "trainval", "log-bad", bad)
    write_log(root, "test", "log-test", make_log(14, "log-test"))  # 1 scene
    return root


def test_quarantines_bad_log_and_keeps_good(tmp_path):
    root = _source(tmp_path)
    params = IngestParams(split=SplitParams(mode="folder", folder_map={"trainval": "train"}))
    report = ingest(root, ["trainval", "test"], tmp_path / "out", params, progress=False)
    assert (report.logs_read, report.logs_refused) == (3, 1)
    assert report.scenes_per_split == {"train": 3, "test": 1}
    assert report.metrics()["scenes_total"] == 4.0
    quarantine = json.loads((tmp_path / "out" / "quarantine.json").read_text())
    assert [(q["log"], q["field"], q["frame"]) for q in quarantine] == [("log-bad", "ego2global_translation", 5)]
    train = list(read_scenes(tmp_path / "out" / "scenes" / "train.parquet"))
    assert sorted({s.log_name for s in train}) == ["log-good-1", "log-good-2"]
    assert [s.token for s in read_scenes(tmp_path / "out" / "scenes" / "test.parquet")] == [token("log-test", 3)]
    assert len(report.scene_digests["train"]) == 64
    metas = {m.source_split for _, m in read_scenes_with_meta(tmp_path / "out" / "scenes" / "train.parquet")}
    assert metas == {"trainval"}  # images are found under sensor_blobs/<source folder>


def test_hostile_and_truncated_logs_are_quarantined(tmp_path):
    root = _source(tmp_path)
    folder = root / "navsim_logs" / "trainval"
    (folder / "log-cut.pkl").write_bytes(pickle.dumps(make_log(20, "log-cut"))[:500])
    (folder / "log-evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    report = ingest(root, ["trainval"], tmp_path / "out", IngestParams(), progress=False)
    by_log = {q.log: q for q in report.quarantine}
    assert sorted(by_log) == ["log-bad", "log-cut", "log-evil"]
    assert "os.system" in by_log["log-evil"].reason
    assert by_log["log-cut"].field == "<pickle>"
    assert report.logs_read == 2 and sum(report.scenes_per_split.values()) == 3


def test_duplicate_scene_tokens_quarantine_the_later_log(tmp_path):
    root = _source(tmp_path)
    copy = make_log(16, "log-good-2")  # the frames of log-good-2 under a new name (a shared log_name is tested elsewhere)
    for f in copy:
        f["log_name"] = "log-good-3"
    write_log(root, "trainval", "log-good-3", copy)
    report = ingest(root, ["trainval"], tmp_path / "out", IngestParams(), progress=False)
    assert [(q.log, q.field) for q in report.quarantine] == [("log-bad", "ego2global_translation"), ("log-good-3", "token")]


def test_validate_hook_and_max_scenes(tmp_path):
    root = _source(tmp_path)

    def validate(log_name, scenes):
        return ["too few scenes"] if len(scenes) < 2 else []

    params = IngestParams(split=SplitParams(test_fraction=0.0))
    report = ingest(root, ["trainval"], tmp_path / "out", params, progress=False, validate=validate)
    assert {q.log: q.reason for q in report.quarantine if q.field == "validation"} == {"log-good-2": "too few scenes"}
    assert report.scenes_per_split == {"train": 2, "test": 0}
    assert list(read_scenes(tmp_path / "out" / "scenes" / "test.parquet")) == []

    capped = IngestParams(scene_filter=SceneFilter(frame_interval=1, max_scenes=5), split=SplitParams(test_fraction=0.0))
    report = ingest(root, ["trainval", "test"], tmp_path / "out2", capped, progress=False)
    assert sum(report.scenes_per_split.values()) == 5


def test_missing_split_folder_is_a_config_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="navsim_logs/nope"):
        ingest(_source(tmp_path), ["nope"], tmp_path / "out", progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_ingest_from_s3(tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        s3.create_bucket(Bucket="logs")
        root = _source(tmp_path)
        for path in sorted((root / "navsim_logs").rglob("*.pkl")):
            s3.upload_file(str(path), "logs", f"v1/{path.relative_to(root).as_posix()}")
        params = IngestParams(split=SplitParams(mode="folder"))
        report = ingest("s3://logs/v1", ["trainval", "test"], tmp_path / "out", params, progress=False)
        with pytest.raises(FileNotFoundError, match="navsim_logs/navtrain"):
            ingest("s3://logs/v1", ["navtrain"], tmp_path / "out3", params, progress=False)
    finally:
        server.stop()
    assert report.scenes_per_split == {"trainval": 3, "test": 1}
    assert [q.path for q in report.quarantine] == ["s3://logs/v1/navsim_logs/trainval/log-bad.pkl"]
