import pytest
import torch
from torch.utils.data import DataLoader

from drivefine_core.features.dataset import InMemoryFeatureDataset, StreamingFeatureDataset, collate_features
from drivefine_core.features.params import FeatureParams
from drivefine_core.features.store import build_feature_store
from tests.features.feature_scenes import make_log

torch.set_num_threads(1)
PARAMS = FeatureParams(row_group_size=3, shuffle_buffer=8, image_width=32, image_height=18)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    scenes = []
    for name, n in (("log-a", 7), ("log-b", 5), ("log-c", 9), ("log-d", 4)):
        scenes += make_log(root, name, n, size=(64, 36))
    build_feature_store(scenes, str(root / "sensor_blobs"), str(root / "features"), "trainval", PARAMS)
    return str(root / "features"), [s.token for s in scenes]


def tokens_of(loader):
    out = []
    for batch in loader:
        out += batch["token"]
    return out


def test_no_duplicates_across_two_workers_and_two_ranks(store):
    uri, all_tokens = store
    seen = []
    for rank in range(2):
        ds = StreamingFeatureDataset(uri, PARAMS, rank=rank, world_size=2)
        got = tokens_of(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_features))
        assert len(got) == len(ds)
        seen += got
    assert len(seen) == len(set(seen)) == len(all_tokens)
    assert set(seen) == set(all_tokens)


def test_epochs_reshuffle_with_a_seed(store):
    uri, all_tokens = store
    ds = StreamingFeatureDataset(uri, PARAMS)
    e0 = tokens_of(DataLoader(ds, batch_size=5, collate_fn=collate_features))
    again = tokens_of(DataLoader(StreamingFeatureDataset(uri, PARAMS), batch_size=5, collate_fn=collate_features))
    ds.set_epoch(1)
    e1 = tokens_of(DataLoader(ds, batch_size=5, collate_fn=collate_features))
    assert e0 == again  # same seed, same epoch: same order
    assert e0 != e1 and sorted(e0) == sorted(e1) == sorted(all_tokens)
    assert e0 != all_tokens  # shuffled at all
    plain = StreamingFeatureDataset(uri, PARAMS.model_copy(update={"shuffle": False}))
    assert tokens_of(DataLoader(plain, batch_size=5, collate_fn=collate_features)) == all_tokens  # logs sorted, rows in order


def test_even_ranks_yield_equal_counts_without_duplicates(store):
    uri, _ = store
    counts, seen = [], []
    for rank in range(3):
        ds = StreamingFeatureDataset(uri, PARAMS, rank=rank, world_size=3, even_ranks=True)
        got = tokens_of(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_features))
        counts.append(len(got))
        assert len(got) == len(ds)
        seen += got
    assert len(set(counts)) == 1 and counts[0] > 0
    assert len(seen) == len(set(seen))


def test_sample_tensors(store):
    uri, _ = store
    batch = next(iter(DataLoader(StreamingFeatureDataset(uri, PARAMS), batch_size=4, collate_fn=collate_features)))
    assert batch["image"].shape == (4, 3, 18, 32) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0 and batch["image"].std() > 0
    assert batch["command"].shape == (4, 4) and torch.all(batch["command"].sum(-1) == 1)
    assert batch["velocity"].shape == (4, 2) and batch["acceleration"].shape == (4, 2)
    assert batch["history"].shape == (4, 4, 3) and torch.all(batch["history"][:, -1] == 0)
    assert batch["target"].shape == (4, 8, 3)
    assert batch["target_tokens"].shape == (4, 24) and batch["target_tokens"].dtype == torch.int64
    assert len(batch["token"]) == 4 and len(batch["log_name"]) == 4


def test_multi_view_and_in_memory(tmp_path):
    params = FeatureParams(cameras=["CAM_L0", "CAM_F0", "CAM_R0"], image_width=32, image_height=18)
    scenes = make_log(tmp_path, "log-m", 3, size=(64, 36), cameras=("CAM_F0", "CAM_L0", "CAM_R0"))
    build_feature_store(scenes, str(tmp_path / "sensor_blobs"), str(tmp_path / "f"), "trainval", params)
    sample = next(iter(StreamingFeatureDataset(str(tmp_path / "f"), params)))
    assert sample["image"].shape == (9, 18, 32)  # views concatenated along channels
    mem = InMemoryFeatureDataset(str(tmp_path / "f"))
    assert len(mem) == 3 and mem[1]["token"] == scenes[1].token and mem[1]["image"].shape == (9, 18, 32)
    with pytest.raises(IndexError):
        mem[3]


def test_log_filter_and_bad_rank(store):
    uri, _ = store
    assert len(StreamingFeatureDataset(uri, PARAMS, logs=["log-b"])) == 5
    with pytest.raises(ValueError, match="log-zz"):
        StreamingFeatureDataset(uri, PARAMS, logs=["log-zz"])
    with pytest.raises(ValueError, match="rank"):
        StreamingFeatureDataset(uri, PARAMS, rank=2, world_size=2)
