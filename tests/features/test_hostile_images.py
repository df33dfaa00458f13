"""Camera files named by scenes stay inside sensor_blobs and are read with a size limit (issue 13, item 1).

The scenes here bypass the log reader (as a scenes file written by an older ingest would), so the
feature builder's own checks are what keeps a file from outside out of the feature store.
"""

import os

from drivefine_core.features.params import FeatureParams
from drivefine_core.features.store import build_feature_store
from tests.features.feature_scenes import camera_jpeg, make_log

SPLIT = "trainval"


def _build(tmp_path, scenes, **params):
    return build_feature_store(scenes, str(tmp_path / "sensor_blobs"), str(tmp_path / "features"), SPLIT,
                               FeatureParams(row_group_size=2, **params))


def _stored_files(tmp_path):
    return sorted(p.relative_to(tmp_path / "features").as_posix() for p in (tmp_path / "features").rglob("*.parquet"))


def test_data_path_outside_sensor_blobs_fails_only_its_log(tmp_path):
    good = make_log(tmp_path, "log-good", 2)
    evil = make_log(tmp_path, "log-evil", 2)
    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(camera_jpeg(1))
    for data_path in ("../../outside/secret.jpg", str(secret)):
        for scene in evil:
            scene.current_frame.cameras["CAM_F0"].data_path = data_path
        result = _build(tmp_path, good + evil)
        assert sorted(result.failed) == ["log-evil"]
        assert "camera data_path" in result.failed["log-evil"]
        assert _stored_files(tmp_path) == ["log=log-good/part-0.parquet"]


def test_device_and_oversized_images_fail_their_log_without_reading_them(tmp_path):
    good = make_log(tmp_path, "log-good", 2)
    zero = make_log(tmp_path, "log-zero", 1)
    big = make_log(tmp_path, "log-big", 1, size=(1920, 1080))
    image = tmp_path / "sensor_blobs" / SPLIT / zero[0].current_frame.cameras["CAM_F0"].data_path
    image.unlink()
    image.symlink_to("/dev/zero")  # read whole, this is an endless file
    limit = max(os.path.getsize(p) for p in (tmp_path / "sensor_blobs" / SPLIT / "log-good").rglob("*.jpg")) + 1
    result = _build(tmp_path, good + zero + big, max_source_image_bytes=limit)
    assert sorted(result.failed) == ["log-big", "log-zero"]
    assert "not a regular file" in result.failed["log-zero"] and "cams.CAM_F0.data_path" in result.failed["log-zero"]
    assert f"over the limit of {limit}" in result.failed["log-big"]
    assert result.written == ["log-good"]
