import torch
from torch.utils.data import DataLoader

from drivefine_core.features.dataset import StreamingFeatureDataset, collate_features
from drivefine_core.features.params import FeatureParams
from drivefine_core.features.store import build_feature_store
from drivefine_core.storage import list_prefix, write_bytes_atomic
from drivefine_core.validation import validate_features_by_log
from tests.features.feature_scenes import make_log

torch.set_num_threads(1)
PARAMS = FeatureParams(row_group_size=2, image_width=32, image_height=18)


def test_write_and_stream_features_from_s3(tmp_path, s3_bucket):
    scenes = make_log(tmp_path, "log-a", 5, size=(64, 36)) + make_log(tmp_path, "log-b", 3, size=(64, 36))
    # Sensor blobs on S3 as well: the builder reads them through the same storage layer.
    blobs = f"s3://{s3_bucket}/sensor_blobs"
    for p in (tmp_path / "sensor_blobs").rglob("*.jpg"):
        write_bytes_atomic(f"{blobs}/{p.relative_to(tmp_path / 'sensor_blobs').as_posix()}", p.read_bytes())
    out = f"s3://{s3_bucket}/features"
    res = build_feature_store(scenes, blobs, out, "trainval", PARAMS)
    assert sorted(res.written) == ["log-a", "log-b"]
    assert {o.uri.rsplit("/", 2)[-2] for o in list_prefix(out) if o.uri.endswith(".parquet")} == {"log=log-a", "log=log-b"}
    again = build_feature_store(scenes, blobs, out, "trainval", PARAMS)
    assert again.written == [] and sorted(again.reused) == ["log-a", "log-b"]

    seen = []
    for rank in range(2):
        ds = StreamingFeatureDataset(out, PARAMS, rank=rank, world_size=2)
        workers = 2 if rank == 0 else 0  # forked workers open their own S3 connections
        for batch in DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate_features, timeout=120 if workers else 0):
            assert batch["image"].shape[1:] == (3, 18, 32)
            seen += batch["token"]
    assert sorted(seen) == sorted(s.token for s in scenes)
    assert validate_features_by_log(out, PARAMS) == {"log-a": [], "log-b": []}
