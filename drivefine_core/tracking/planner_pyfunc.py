"""The planner as an MLflow pyfunc model: scene features in (JSON or DataFrame), 8 poses out.

Input columns (one row per scene):
  images_b64    list[str]  encoded camera views (JPEG/PNG, base64), in the planner's camera order
  command       list[int]  one-hot [left, straight, right, unknown]
  velocity      list[float] ego frame [vx, vy]
  acceleration  list[float] ego frame [ax, ay]
  history       list[float] the 4 history poses [x, y, heading] flattened to 12 values (ego frame)
Output columns: x, y, heading - each a list of 8 floats (0.5 s apart, ego frame, metres / radians).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from PIL import Image

INPUT_COLUMNS = ("images_b64", "command", "velocity", "acceleration", "history")


NUMERIC_COLUMNS = ("command", "velocity", "acceleration", "history")


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric list columns as lists of floats (a signature needs one element type per column)."""
    df = df.copy()
    for col in NUMERIC_COLUMNS:
        if col in df.columns:
            df[col] = [[float(x) for x in np.ravel(v)] for v in df[col]]
    df["images_b64"] = [list(v) for v in df["images_b64"]]
    return df


def encode_views(views: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode("ascii") for v in views]


def _image_tensor(views_b64: list[str], height: int, width: int) -> torch.Tensor:
    """Camera views as the planner saw them in training: an image of another size goes through the
    feature builder's own resize and JPEG encoding first (features.builder.encode_image)."""
    from drivefine_core.features.builder import encode_image
    from drivefine_core.features.params import FeatureParams
    from drivefine_core.features.samples import decode_image

    arrays = []
    for i, v in enumerate(views_b64):
        raw = base64.b64decode(v)
        try:
            with Image.open(io.BytesIO(raw)) as img:
                same_size = img.size == (width, height)
            if not same_size:
                raw = encode_image(raw, FeatureParams(image_width=width, image_height=height), f"images_b64[{i}]")
            arr = decode_image(raw).astype(np.float32) / 255.0
        except Exception as exc:
            raise ValueError(f"images_b64[{i}]: not a decodable image ({exc})") from None
        arrays.append(torch.from_numpy(arr).permute(2, 0, 1))
    return torch.cat(arrays, dim=0)


def frame_to_batch(df: pd.DataFrame, height: int, width: int) -> dict[str, torch.Tensor]:
    missing = [c for c in INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"input is missing column(s) {missing}; expected {list(INPUT_COLUMNS)}")

    def stack(col: str, shape: tuple[int, ...]) -> torch.Tensor:
        try:
            arr = np.asarray([np.asarray(v, dtype=np.float32).reshape(shape) for v in df[col]])
        except ValueError as exc:
            raise ValueError(f"column {col}: each value must hold {int(np.prod(shape))} numbers ({exc})") from None
        return torch.from_numpy(arr)

    return {
        "image": torch.stack([_image_tensor(list(v), height, width) for v in df["images_b64"]]),
        "command": stack("command", (4,)),
        "velocity": stack("velocity", (2,)),
        "acceleration": stack("acceleration", (2,)),
        "history": stack("history", (4, 3)),
    }


class PlannerModel(mlflow.pyfunc.PythonModel):
    """Loads the planner from the model's artifacts; `mode` comes from the model config."""

    def load_context(self, context: Any) -> None:
        from drivefine_core.models.planner import Planner

        self.planner = Planner.load(context.artifacts["planner"]).eval()
        config = context.model_config or {}
        self.mode = config.get("mode", "mdm+refine")
        self.seed = int(config.get("seed", 0))

    # No type hints on predict: MLflow 3 would derive a loose signature from them instead of ours.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        p = self.planner.params
        batch = frame_to_batch(pd.DataFrame(model_input), p.image_height, p.image_width)
        with torch.no_grad():
            poses = self.planner.plan(batch, self.mode, seed=self.seed).poses.cpu().numpy().astype(float)
        return pd.DataFrame({"x": list(poses[..., 0]), "y": list(poses[..., 1]), "heading": list(poses[..., 2])})


def log_planner_model(planner_dir: str | Path, mode: str, input_example: pd.DataFrame,
                      registered_model: str | None = None, seed: int = 0) -> mlflow.models.model.ModelInfo:
    """Log the planner (its save() directory) as a pyfunc with signature and input example."""
    from mlflow.models import infer_signature

    input_example = normalize_frame(input_example)
    probe = PlannerModel()  # loaded only to compute the output example; the logged model stays empty
    ctx = type("Ctx", (), {"artifacts": {"planner": str(planner_dir)}, "model_config": {"mode": mode, "seed": seed}})
    probe.load_context(ctx)
    signature = infer_signature(input_example, probe.predict(None, input_example))
    return mlflow.pyfunc.log_model(
        name="planner", python_model=PlannerModel(), artifacts={"planner": str(planner_dir)},
        model_config={"mode": mode, "seed": seed}, signature=signature, input_example=input_example,
        registered_model_name=registered_model, code_paths=[str(Path(__file__).resolve().parents[1])],
    )


def frame_from_feature_columns(cols: dict, rows: list[int]) -> pd.DataFrame:
    """Serving input rows built from feature-store columns (features.samples.table_columns)."""
    return normalize_frame(pd.DataFrame({
        "images_b64": [encode_views(list(cols["images"][i])) for i in rows],
        "command": [cols["command"][i] for i in rows],
        "velocity": [cols["velocity"][i] for i in rows],
        "acceleration": [cols["acceleration"][i] for i in rows],
        "history": [np.ravel(cols["history"][i]) for i in rows],
    }))
