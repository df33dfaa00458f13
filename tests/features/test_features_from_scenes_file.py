import pyarrow.parquet as pq

from drivefine_core.data.scenes_io import write_scenes
from drivefine_core.features.from_scenes import build_features_from_scenes_file
from drivefine_core.features.params import FeatureParams
from drivefine_core.features.store import partition_path
from tests.features.feature_scenes import make_log


def test_scenes_parquet_to_features_reads_images_from_the_source_folder(tmp_path):
    # Split "navtrain" is cut from the "trainval" folder: images live under sensor_blobs/trainval.
    a = make_log(tmp_path, "log-a", 3, split="trainval")
    b = make_log(tmp_path, "log-b", 2, split="trainval")
    path = write_scenes(a + b, tmp_path / "scenes" / "navtrain.parquet", split="navtrain", source_split="trainval")
    out = tmp_path / "features"
    res = build_features_from_scenes_file(path, str(tmp_path / "sensor_blobs"), str(out), FeatureParams())
    assert sorted(res.written) == ["log-a", "log-b"] and res.failed == {}
    table = pq.read_table(out / partition_path("log-a"))
    assert set(table["split"].to_pylist()) == {"navtrain"}
    assert table["token"].to_pylist() == [s.token for s in a]
    again = build_features_from_scenes_file(path, str(tmp_path / "sensor_blobs"), str(out), FeatureParams())
    assert again.written == [] and sorted(again.reused) == ["log-a", "log-b"]
