"""Feature rows -> training samples: decode the images, turn arrays into tensors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from drivefine_core.features.arrow_schema import fixed_list_to_numpy

_SHAPES = {
    "velocity": (2,),
    "acceleration": (2,),
    "history": (4, 3),
    "command": (4,),
    "target": (8, 3),
    "target_tokens": (24,),
}


def table_columns(table: pa.Table) -> dict[str, Any]:
    """Columns of a feature table as numpy arrays (numbers) and lists (strings, encoded images)."""
    n_views = table.schema.field("images").type.list_size
    flat = table["images"].combine_chunks().flatten().to_pylist()
    cols: dict[str, Any] = {
        "token": table["token"].to_pylist(),
        "log_name": table["log_name"].to_pylist(),
        "images": [flat[i * n_views : (i + 1) * n_views] for i in range(table.num_rows)],
    }
    for name, shape in _SHAPES.items():
        cols[name] = fixed_list_to_numpy(table[name], shape)
    return cols


def decode_image(data: bytes) -> np.ndarray:
    """Encoded JPEG / PNG -> (H, W, 3) uint8."""
    with Image.open(io.BytesIO(data)) as img:
        return np.array(img.convert("RGB"))  # a writable copy: torch wants one


def decode_rows(row: dict[str, Any], decode_images: bool = True) -> dict[str, Any]:
    """One row -> the sample a model sees.

    image: (3 * V, H, W) float32 in [0, 1]: the V camera views (params order) concatenated along the
    channels, RGB each, as the planners' vision tower reads them (models/batch.py);
    command / velocity / acceleration / history / target float32, target_tokens int64; token, log_name str.
    With decode_images=False, `image_bytes` (list of encoded views) replaces `image`.
    """
    out: dict[str, Any] = {"token": row["token"], "log_name": row["log_name"]}
    if decode_images:
        views = [torch.from_numpy(decode_image(b)).permute(2, 0, 1) for b in row["images"]]
        out["image"] = torch.cat(views, dim=0).to(torch.float32).div_(255.0)
    else:
        out["image_bytes"] = list(row["images"])
    for name in ("command", "velocity", "acceleration", "history", "target"):
        out[name] = torch.from_numpy(np.asarray(row[name], dtype=np.float32).copy())
    out["target_tokens"] = torch.from_numpy(np.asarray(row["target_tokens"], dtype=np.int64))
    return out
