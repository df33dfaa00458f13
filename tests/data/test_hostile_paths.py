"""Paths that come from logs or params stay inside their root (issue 13, item 1).

Crafted logs name a `log_name` or camera `data_path` that climbs out of the data folder or is absolute,
params name a split folder with '..', and files are special (/dev/zero, a FIFO) or larger than their
limit: each is refused (a log is quarantined naming log, frame and field) and nothing outside is touched.
"""

import os

import pytest
from tests.data.readers_factory import make_log, write_log

from drivefine_core.config import ParamsError, parse_params
from drivefine_core.data.ingest import ingest
from drivefine_core.data.params import IngestParams, SplitParams
from drivefine_core.data.schema import Scene
from drivefine_core.metrics.cache_stage import NothingBuiltError, build_metric_cache_dir
from drivefine_core.storage.safe_paths import (
    UnreadableFileError,
    UnsafePathError,
    join_inside,
    read_limited,
    safe_name,
    safe_relative,
)


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\b", "", "~/x", "C:/x", "s3://b/k"])
def test_relative_paths_that_leave_their_root_are_refused(bad):
    with pytest.raises(UnsafePathError, match="camera data_path"):
        join_inside("root", bad, "camera data_path")


@pytest.mark.parametrize("bad", ["..", ".", "a/b", ".hidden", "../victim", "x" * 300, 7])
def test_names_must_be_one_plain_component(bad):
    with pytest.raises(UnsafePathError):
        safe_name(bad, "log_name")
    assert safe_name("2021.05.12_log-1", "log_name") == "2021.05.12_log-1"
    assert safe_relative("log/CAM_F0/t.jpg", "p") == "log/CAM_F0/t.jpg"


def _ingest(root, out, **params):
    p = IngestParams(split=SplitParams(mode="folder", folder_map={"trainval": "train"}), **params)
    return ingest(root, ["trainval"], out, p, progress=False)


def test_log_name_that_climbs_is_quarantined_naming_log_frame_and_field(tmp_path):
    root = tmp_path / "navsim"
    write_log(root, "trainval", "log-good", make_log(16, "log-good"))
    evil = make_log(16, "log-evil")
    for f in evil:
        f["log_name"] = "../../elsewhere/victim"
    write_log(root, "trainval", "log-evil", evil)
    report = _ingest(root, tmp_path / "out")
    assert [(q.log, q.field, q.frame) for q in report.quarantine] == [("log-evil", "log_name", 0)]
    assert "plain file name" in report.quarantine[0].reason
    assert report.logs_read == 1 and report.scenes_per_split == {"train": 1}


@pytest.mark.parametrize("data_path", ["/etc/hostname", "../../../outside/secret.jpg", "log-evil/CAM_F0/../../../x.jpg"])
def test_camera_data_path_outside_sensor_blobs_is_quarantined(tmp_path, data_path):
    root = tmp_path / "navsim"
    write_log(root, "trainval", "log-good", make_log(16, "log-good"))
    evil = make_log(16, "log-evil")
    evil[3]["cams"]["CAM_F0"]["data_path"] = data_path
    write_log(root, "trainval", "log-evil", evil)
    report = _ingest(root, tmp_path / "out")
    assert [(q.log, q.field, q.frame) for q in report.quarantine] == [("log-evil", "cams.CAM_F0.data_path", 3)]
    assert report.logs_read == 1


def test_special_and_oversized_log_files_are_quarantined(tmp_path):
    root = tmp_path / "navsim"
    good = write_log(root, "trainval", "log-good", make_log(16, "log-good"))
    folder = good.parent
    (folder / "log-zero.pkl").symlink_to("/dev/zero")  # a device: reading it would never end
    os.mkfifo(folder / "log-fifo.pkl")  # opening it for reading would wait for a writer
    write_log(root, "trainval", "log-big", make_log(40, "log-big"))
    limit = good.stat().st_size + 10  # log-good fits, log-big (40 frames) does not
    report = _ingest(root, tmp_path / "out", max_log_bytes=limit)
    by_log = {q.log: q for q in report.quarantine}
    assert sorted(by_log) == ["log-big", "log-fifo", "log-zero"]
    assert all(q.field == "<file>" for q in by_log.values())
    assert "not a regular file" in by_log["log-zero"].reason and "not a regular file" in by_log["log-fifo"].reason
    assert f"over the limit of {limit}" in by_log["log-big"].reason
    assert report.logs_read == 1


def test_read_limited_never_reads_more_than_limit_plus_one(tmp_path, monkeypatch):
    # /proc files are regular files that report size 0: only the read itself can find they are too long.
    read_sizes = []
    real_read = os.read

    def counting_read(fd, n):
        data = real_read(fd, n)
        read_sizes.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting_read)
    with pytest.raises(UnreadableFileError, match="over the limit of 10 bytes"):
        read_limited("/proc/self/maps", 10)
    assert sum(read_sizes) == 11
    ok = tmp_path / "ok.bin"
    ok.write_bytes(b"x" * 10)
    assert read_limited(ok, 10) == b"x" * 10
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        read_limited("/dev/zero", 10)


def test_split_names_from_params_with_dotdot_are_refused(tmp_path):
    data = {"ingest": {"split": {"mode": "folder", "folder_map": {"navtrain": "../../outside/train"}}}}
    with pytest.raises(ParamsError, match=r"ingest\.split\.folder_map.*plain file name"):
        parse_params(data)
    with pytest.raises(ParamsError, match=r"data\.split_dirs"):
        parse_params({"data": {"split_dirs": ["../navtrain"]}})
    # the library refuses too when handed such params directly (not through params.yaml)
    split = SplitParams.model_construct(mode="folder", folder_map={"trainval": "../../outside/train"},
                                        train_name="train", test_name="test", test_fraction=0.2, salt="s")
    root = tmp_path / "navsim"
    write_log(root, "trainval", "log-good", make_log(16, "log-good"))
    params = IngestParams(split=SplitParams(mode="folder")).model_copy(update={"split": split})
    with pytest.raises(UnsafePathError, match="split name"):
        ingest(root, ["trainval"], tmp_path / "a" / "out", params, progress=False)
    assert not (tmp_path / "outside").exists()


def test_metric_cache_never_deletes_a_file_named_by_a_climbing_log_name(tmp_path):
    victim = tmp_path / "victim.parquet"
    victim.write_bytes(b"precious")
    out = tmp_path / "a" / "b" / "out"  # out/../../../victim.parquet is the victim
    scene = Scene(token="t0", log_name="../../../victim", map_location="nowhere", frames=[])
    with pytest.raises(NothingBuiltError, match="plain file name"):  # its only log was refused
        build_metric_cache_dir([scene], tmp_path / "no-maps", out)
    assert victim.read_bytes() == b"precious"
    assert not (out / "manifest.json").exists()
