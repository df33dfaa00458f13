import json

import numpy as np
import pyarrow as pa
import pytest

from drivefine_core.features.params import FeatureParams
from drivefine_core.features.row_groups import list_row_groups, read_row_group
from drivefine_core.features.store import build_feature_store
from drivefine_core.validation import validate_features, validate_scenes
from tests.features.feature_scenes import make_log, make_log_scenes


def test_scene_suite_flags_the_bad_logs_only():
    good = make_log_scenes("log-good", 3)
    other = make_log_scenes("log-other", 2, speed=3.0, yaw_rate=-0.1)
    fast = make_log_scenes("log-fast", 3)
    fast[1].frames[6].ego.velocity = np.array([70.0, 0.0])  # 252 km/h
    backwards = make_log_scenes("log-backwards", 2)
    f = backwards[0].frames
    f[8].timestamp_us, f[9].timestamp_us = f[9].timestamp_us, f[8].timestamp_us
    bad_cmd = make_log_scenes("log-cmd", 2)
    bad_cmd[0].frames[2].ego.driving_command = np.array([1, 1, 0, 0])
    nan = make_log_scenes("log-nan", 2)
    nan[0].frames[0].ego.pose = np.array([np.nan, 0.0, 0.0])

    report = validate_scenes(good + other + fast + backwards + bad_cmd + nan)
    by_log = report.by_log
    assert by_log["log-good"] == [] and by_log["log-other"] == []
    assert report.failed_logs == ["log-backwards", "log-cmd", "log-fast", "log-nan"]
    fast_msgs = " | ".join(by_log["log-fast"])
    assert "expect_column_values_to_be_between(column=speed" in fast_msgs and "70.0" in fast_msgs
    assert any("expect_column_pair_values_a_to_be_greater_than_b" in m for m in by_log["log-backwards"])
    assert any("command_sum" in m and "one-hot" in m for m in by_log["log-cmd"])
    assert any("expect_column_values_to_not_be_null(column=x" in m for m in by_log["log-nan"])
    assert not report.success
    out = report.to_dict()
    json.dumps(out)  # serialisable as an MLflow artifact
    assert out["failed_logs"] == report.failed_logs and out["rows"] == 14 * 14
    assert report.metrics()["failed_logs"] == 4.0 and report.metrics()["success"] == 0.0


def _replace_rows(table: pa.Table, log: str, column: str, fn) -> pa.Table:
    values = table[column].to_pylist()
    logs = table["log_name"].to_pylist()
    new = [fn(v) if name == log else v for v, name in zip(values, logs)]
    idx = table.schema.get_field_index(column)
    return table.set_column(idx, table.schema.field(column), pa.array(new, type=table.schema.field(column).type))


@pytest.fixture(scope="module")
def feature_table(tmp_path_factory):
    root = tmp_path_factory.mktemp("feat")
    scenes = []
    for name in ("log-a", "log-b", "log-c", "log-d"):
        scenes += make_log(root, name, 3, size=(64, 36))
    params = FeatureParams(image_width=32, image_height=18)
    build_feature_store(scenes, str(root / "sensor_blobs"), str(root / "features"), "trainval", params)
    uri = str(root / "features")
    return uri, pa.concat_tables([read_row_group(g) for g in list_row_groups(uri)]), params


def test_feature_suite_flags_a_bad_image_and_bad_tokens(feature_table, tmp_path):
    uri, table, params = feature_table
    table = _replace_rows(table, "log-b", "images", lambda views: [views[0][: len(views[0]) // 2]])  # truncated JPEG
    table = _replace_rows(table, "log-c", "target_tokens", lambda t: [6000] + t[1:])  # outside the vocabulary
    report = validate_features(table, params)
    assert report.by_log["log-a"] == [] and report.by_log["log-d"] == []
    assert report.failed_logs == ["log-b", "log-c"]
    assert any("image_decodable" in m and "every camera view decodes" in m for m in report.by_log["log-b"])
    assert any("xy_token_max" in m for m in report.by_log["log-c"])
    report.save(str(tmp_path / "report.json"))
    assert json.loads((tmp_path / "report.json").read_text())["failed_logs"] == ["log-b", "log-c"]


def test_feature_suite_passes_a_clean_store_and_checks_the_image_size(feature_table):
    uri, _, params = feature_table
    assert validate_features(uri, params).success
    wrong = validate_features(uri, params.model_copy(update={"image_width": 40}))
    assert wrong.failed_logs == ["log-a", "log-b", "log-c", "log-d"]
    assert all(any("image_width" in m for m in msgs) for msgs in wrong.by_log.values())
