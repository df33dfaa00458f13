"""The planner as an MLflow pyfunc model: scene features in (JSON or DataFrame), 8 poses out.

Input columns (one row per scene):
  images_b64    list[str]  encoded camera views (JPEG/PNG, base64), in the planner's camera order
  command       list[int]  one-hot [left, straight, right, unknown]
  velocity      list[float] ego frame [vx, vy]
  acceleration  list[float] ego frame [ax, ay]
  history       list[float] the 4 history poses [x, y, heading] flattened to 12 values (ego frame)
Output columns: x, y, heading - each a list of 8 floats (0.5 s apart, ego frame, metres / radians).

A request is checked before anything is decoded or planned (limits: params ops.serving, recorded in the
model's config at registration; `drivefine serve` passes the current ones in DRIVEFINE_SERVING_LIMITS):
rows per request, views per row, each view's encoded size and pixel count (read from its header), and
every number finite and within range. A refusal is an MlflowException INVALID_PARAMETER_VALUE, which the
scoring server answers with 400 and the message (row, field, limit), never a stack trace.

The model's pip requirements are the distributions its code imports, pinned to the installed versions
(SERVING_DISTRIBUTIONS); drivefine_core itself travels as code. MLflow's own inference would load the model in a
second interpreter at every registration (about 10 s) and named the project (on no index) but not torch.
"""

from __future__ import annotations

import base64
import binascii
import importlib.metadata
import io
import json
import os
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from PIL import Image

from drivefine_core.models.batch import PlannerBatch
from drivefine_core.ops.params import ServingParams

INPUT_COLUMNS = ("images_b64", "command", "velocity", "acceleration", "history")
LIMITS_ENV = "DRIVEFINE_SERVING_LIMITS"  # JSON of ops.serving, set by `drivefine serve`


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
    """(V, 3, H, W) camera views as the planner saw them in training: an image of another size goes through
    the feature builder's own resize and JPEG encoding first (features.builder.encode_image)."""
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
    return torch.stack(arrays)


def frame_to_batch(df: pd.DataFrame, height: int, width: int) -> PlannerBatch:
    """A request's rows as the planners' batch (the same PlannerBatch.of that training and evaluation use)."""
    missing = [c for c in INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"input is missing column(s) {missing}; expected {list(INPUT_COLUMNS)}")

    def stack(col: str, shape: tuple[int, ...]) -> torch.Tensor:
        try:
            arr = np.asarray([np.asarray(v, dtype=np.float32).reshape(shape) for v in df[col]])
        except ValueError as exc:
            raise ValueError(f"column {col}: each value must hold {int(np.prod(shape))} numbers ({exc})") from None
        return torch.from_numpy(arr)

    return PlannerBatch.of({
        "image": torch.stack([_image_tensor(list(v), height, width) for v in df["images_b64"]]),
        "command": stack("command", (4,)),
        "velocity": stack("velocity", (2,)),
        "acceleration": stack("acceleration", (2,)),
        "history": stack("history", (4, 3)),
    })


class BadRequest(ValueError):
    """A request the served model refuses; the message names the row and field."""


def _numbers(df: pd.DataFrame, col: str, bounds: list[tuple[float, float, str]]) -> None:
    """Each row's `col`: one finite number per entry of `bounds` (low, high, the knob that sets them)."""
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    for i, value in enumerate(df[col]):
        try:
            arr = np.asarray(value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise BadRequest(f"row {i}, field {col}: not a list of numbers") from None
        if arr.size != len(bounds):
            raise BadRequest(f"row {i}, field {col}: {arr.size} values, expected {len(bounds)}")
        bad = ~np.isfinite(arr)
        if bad.any():
            k = int(np.argmax(bad))
            raise BadRequest(f"row {i}, field {col}[{k}]: not a finite number ({arr[k]!r})")
        out = (arr < lo) | (arr > hi)
        if out.any():
            k = int(np.argmax(out))
            raise BadRequest(f"row {i}, field {col}[{k}]: {arr[k]:.6g} is outside [{lo[k]:g}, {hi[k]:g}] "
                             f"({bounds[k][2]})")


def _check_views(views: Any, row: int, num_views: int, limits: ServingParams) -> None:
    if isinstance(views, str) or not hasattr(views, "__len__"):
        raise BadRequest(f"row {row}, field images_b64: a list of {num_views} base64 images expected")
    if len(views) != num_views:
        raise BadRequest(f"row {row}, field images_b64: {len(views)} views, the planner reads {num_views}")
    for k, v in enumerate(views):
        field = f"row {row}, field images_b64[{k}]"
        if not isinstance(v, str):
            raise BadRequest(f"{field}: not a base64 string")
        if len(v) * 3 // 4 > limits.max_image_bytes:  # refused before decoding anything
            raise BadRequest(f"{field}: about {len(v) * 3 // 4} bytes, more than "
                             f"{limits.max_image_bytes} (ops.serving.max_image_bytes)")
        try:
            raw = base64.b64decode(v, validate=True)
            with Image.open(io.BytesIO(raw)) as img:  # reads the header only
                w, h = img.size
        except Image.DecompressionBombError:
            raise BadRequest(f"{field}: more pixels than {limits.max_image_pixels} "
                             "(ops.serving.max_image_pixels)") from None
        except (binascii.Error, ValueError, OSError) as exc:
            raise BadRequest(f"{field}: not a decodable image ({type(exc).__name__})") from None
        if w * h > limits.max_image_pixels:
            raise BadRequest(f"{field}: {w}x{h} pixels, more than {limits.max_image_pixels} "
                             f"(ops.serving.max_image_pixels)")


def validate_request(df: pd.DataFrame, num_views: int, limits: ServingParams) -> None:
    """Refuse (BadRequest naming row and field) what the planner must not be run on."""
    missing = [c for c in INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise BadRequest(f"input is missing column(s) {missing}; expected {list(INPUT_COLUMNS)}")
    if len(df) > limits.max_batch_rows:
        raise BadRequest(f"batch: {len(df)} rows, more than {limits.max_batch_rows} (ops.serving.max_batch_rows)")
    v, acc = limits.max_abs_velocity, limits.max_abs_acceleration
    pos, head = limits.max_abs_history_position, limits.max_abs_history_heading
    _numbers(df, "command", [(0.0, 1.0, "one-hot")] * 4)
    _numbers(df, "velocity", [(-v, v, "m/s, ops.serving.max_abs_velocity")] * 2)
    _numbers(df, "acceleration", [(-acc, acc, "m/s^2, ops.serving.max_abs_acceleration")] * 2)
    pose = [(-pos, pos, "m, ops.serving.max_abs_history_position")] * 2 + [
        (-head, head, "rad, ops.serving.max_abs_history_heading")]
    _numbers(df, "history", pose * 4)  # 4 poses x (x, y, heading)
    for i, views in enumerate(df["images_b64"]):
        _check_views(views, i, num_views, limits)


def serving_limits(config: dict[str, Any]) -> ServingParams:
    """The limits of `drivefine serve` (env), else those recorded at registration, else the defaults."""
    text = os.environ.get(LIMITS_ENV)
    return ServingParams.model_validate(json.loads(text) if text else (config.get("limits") or {}))


class PlannerModel(mlflow.pyfunc.PythonModel):
    """Loads the planner from the model's artifacts; `mode` comes from the model config."""

    def load_context(self, context: Any) -> None:
        from drivefine_core.models.planner import Planner

        self.planner = Planner.load(context.artifacts["planner"]).eval()
        config = context.model_config or {}
        self.mode = config.get("mode") or None  # None: the family's method (models.modes.RL_MODE)
        self.seed = int(config.get("seed", 0))
        self.limits = serving_limits(config)

    # No type hints on predict: MLflow 3 would derive a loose signature from them instead of ours.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        p = self.planner.params
        df = pd.DataFrame(model_input)
        try:  # a bad request is the client's error (400 with the field), not a server failure
            validate_request(df, p.num_views, getattr(self, "limits", ServingParams()))
            batch = frame_to_batch(df, p.image_height, p.image_width)
        except ValueError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        with torch.no_grad():
            poses = self.planner.plan(batch, self.mode, seed=self.seed).poses.cpu().numpy().astype(float)
        return pd.DataFrame({"x": list(poses[..., 0]), "y": list(poses[..., 1]), "heading": list(poses[..., 2])})


# What the planner's code (drivefine_core on the model's load and predict path) imports beyond the standard library
# and MLflow, which MLflow adds itself; tests/registry checks the list against those imports.
SERVING_DISTRIBUTIONS = (
    "torch", "numpy", "pandas", "pyarrow", "fsspec", "pillow", "pydantic", "pyyaml", "safetensors", "cloudpickle")


def serving_requirements() -> list[str]:
    """SERVING_DISTRIBUTIONS pinned to the versions installed here (the ones the model was tested with), without
    a local build label (torch 2.x+cpu -> 2.x: the serving host installs the build for its own hardware)."""
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in SERVING_DISTRIBUTIONS]


def log_planner_model(planner_dir: str | Path, mode: str, input_example: pd.DataFrame,
                      registered_model: str | None = None, seed: int = 0,
                      limits: ServingParams | None = None) -> mlflow.models.model.ModelInfo:
    """Log the planner (its save() directory) as a pyfunc with signature, input example and the request
    limits (params ops.serving) it is served with."""
    from mlflow.models import infer_signature

    input_example = normalize_frame(input_example)
    config = {"mode": mode, "seed": seed, "limits": (limits or ServingParams()).model_dump()}
    probe = PlannerModel()  # loaded only to compute the output example; the logged model stays empty
    ctx = type("Ctx", (), {"artifacts": {"planner": str(planner_dir)}, "model_config": config})
    probe.load_context(ctx)
    signature = infer_signature(input_example, probe.predict(None, input_example))
    return mlflow.pyfunc.log_model(
        name="planner", python_model=PlannerModel(), artifacts={"planner": str(planner_dir)},
        model_config=config, signature=signature, input_example=input_example,
        registered_model_name=registered_model, code_paths=[str(Path(__file__).resolve().parents[1])],
        pip_requirements=serving_requirements(),
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
