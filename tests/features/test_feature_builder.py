import io

import numpy as np
import pytest
from PIL import Image

from drivefine_core.features import tokenizer
from drivefine_core.features.builder import FeatureBuildError, build_scene_features
from drivefine_core.features.params import FeatureParams
from tests.features.feature_scenes import make_log


def test_features_of_one_scene(tmp_path):
    scenes = make_log(tmp_path, "log-a", 2, size=(640, 360), cameras=("CAM_F0", "CAM_L0", "CAM_R0"))
    params = FeatureParams(image_width=96, image_height=54, cameras=["CAM_L0", "CAM_F0", "CAM_R0"])
    f = build_scene_features(scenes[1], str(tmp_path / "sensor_blobs"), "trainval", params)
    assert f.token == scenes[1].token and f.log_name == "log-a" and f.split == "trainval"
    assert len(f.images) == 3
    for b in f.images:
        with Image.open(io.BytesIO(b)) as img:
            assert img.format == "JPEG" and img.size == (96, 54)
    np.testing.assert_allclose(f.history[-1], 0.0, atol=1e-6)
    np.testing.assert_allclose(f.history, scenes[1].history_trajectory(), atol=1e-4)
    np.testing.assert_allclose(f.target, scenes[1].future_trajectory(), atol=1e-4)
    assert f.target[:, 0].min() > 0  # driving forward
    np.testing.assert_array_equal(f.target_tokens, tokenizer.encode(scenes[1].future_trajectory()))
    assert f.command.tolist() == [0, 1, 0, 0]
    np.testing.assert_allclose(f.velocity, scenes[1].current_frame.ego.velocity, rtol=1e-6)
    assert f.target_clipped == 0


def test_deterministic_and_png_option(tmp_path):
    scenes = make_log(tmp_path, "log-a", 1)
    root = str(tmp_path / "sensor_blobs")
    a = build_scene_features(scenes[0], root, "trainval", FeatureParams())
    b = build_scene_features(scenes[0], root, "trainval", FeatureParams())
    assert a.images == b.images
    png = build_scene_features(scenes[0], root, "trainval", FeatureParams(image_format="png"))
    assert png.images[0][:4] == b"\x89PNG"


def test_fast_scene_counts_clipped_target_values(tmp_path):
    scenes = make_log(tmp_path, "log-fast", 1, speed=40.0, accel=0.0)  # 160 m in 4 s: beyond the 100 m range
    f = build_scene_features(scenes[0], str(tmp_path / "sensor_blobs"), "trainval", FeatureParams())
    assert f.target_clipped == int((scenes[0].future_trajectory()[:, 0] >= 100).sum()) > 0


def test_errors_name_the_file_and_field(tmp_path):
    scenes = make_log(tmp_path, "log-a", 1)
    root = tmp_path / "sensor_blobs"
    with pytest.raises(FeatureBuildError, match=r"cams\.CAM_L0"):
        build_scene_features(scenes[0], str(root), "trainval", FeatureParams(cameras=["CAM_F0", "CAM_L0"]))
    path = root / "trainval" / scenes[0].current_frame.cameras["CAM_F0"].data_path
    path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(FeatureBuildError, match="not a decodable image") as info:
        build_scene_features(scenes[0], str(root), "trainval", FeatureParams())
    assert info.value.path.endswith(".jpg") and info.value.field == "image"
    path.unlink()
    with pytest.raises(FeatureBuildError, match="not found"):
        build_scene_features(scenes[0], str(root), "trainval", FeatureParams())
    short = scenes[0]
    short.frames = short.frames[:10]
    with pytest.raises(FeatureBuildError, match="frames"):
        build_scene_features(short, str(root), "trainval", FeatureParams())
