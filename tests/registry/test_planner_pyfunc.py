import io

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from drivefine_core.models import ModelParams, Planner
from drivefine_core.tracking.planner_pyfunc import encode_views, log_planner_model

torch.set_num_threads(1)


def _jpeg(h=32, w=32, seed=0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def scene_frame(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame({
        "images_b64": [encode_views([_jpeg(seed=i)]) for i in range(n)],
        "command": [[0, 1, 0, 0]] * n,
        "velocity": [[5.0, 0.0]] * n,
        "acceleration": [[0.1, 0.0]] * n,
        "history": [[-7.5, 0, 0, -5, 0, 0, -2.5, 0, 0, 0, 0, 0]] * n,
    })


@pytest.fixture(scope="module")
def planner_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("planner")
    torch.manual_seed(0)
    params = ModelParams(width=32, depth=2, heads=2, n_refine_blocks=1, image_height=32, image_width=32,
                         patch_size=16, vision_width=16, vision_depth=1, vision_heads=2, flow_width=16, mdm_steps=4)
    Planner(params).save(d)
    return d


def test_logged_planner_predicts_eight_poses_like_the_planner(tmp_path, planner_dir):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    mlflow.set_experiment("pyfunc")
    df = scene_frame(2)
    with mlflow.start_run():
        info = log_planner_model(planner_dir, "flow", df.iloc[:1], registered_model="p")
    assert info.signature is not None and "images_b64" in info.signature.inputs.input_names()
    loaded = mlflow.pyfunc.load_model("models:/p/1")
    out = loaded.predict(df)
    assert list(out.columns) == ["x", "y", "heading"] and len(out) == 2
    assert all(len(v) == 8 for v in out["x"])
    # Same numbers as calling the planner directly on the same decoded inputs.
    from drivefine_core.tracking.planner_pyfunc import frame_to_batch
    planner = Planner.load(planner_dir).eval()
    direct = planner.plan(frame_to_batch(df, 32, 32), "flow", seed=0).poses.numpy()
    np.testing.assert_allclose(np.stack(out["x"].to_numpy()), direct[..., 0], atol=1e-5)


def test_bad_input_names_the_column(planner_dir):
    from drivefine_core.tracking.planner_pyfunc import frame_to_batch
    df = scene_frame(1).drop(columns=["velocity"])
    with pytest.raises(ValueError, match="velocity"):
        frame_to_batch(df, 32, 32)
    df = scene_frame(1)
    df.at[0, "history"] = [0.0] * 5
    with pytest.raises(ValueError, match="column history"):
        frame_to_batch(df, 32, 32)


def test_served_images_are_preprocessed_like_the_feature_cache():
    """A full-size camera image sent to the server becomes the same tensor the feature cache stores."""
    from drivefine_core.features.builder import encode_image
    from drivefine_core.features.params import FeatureParams
    from drivefine_core.features.samples import decode_image
    from drivefine_core.tracking.planner_pyfunc import frame_to_batch

    big = _jpeg(h=270, w=480, seed=3)
    cached = decode_image(encode_image(big, FeatureParams(image_width=32, image_height=32), "x")) / 255.0
    df = scene_frame(1)
    df.at[0, "images_b64"] = encode_views([big])
    served = frame_to_batch(df, 32, 32)["image"][0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(served, cached, atol=1e-6)
