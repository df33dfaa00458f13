"""Expectations over the feature cache: images decodable and of the params size, one-hot commands,
tokens inside their vocabulary ranges, finite numbers, no nulls, unique scene tokens.

The GX table holds derived columns only (a few numbers per row); images are decoded while it is built,
row group by row group, so a store larger than memory can be checked.
"""

from __future__ import annotations

import io
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from drivefine_core.features import tokenizer
from drivefine_core.features.arrow_schema import fixed_list_to_numpy
from drivefine_core.features.params import FeatureParams
from drivefine_core.features.row_groups import list_row_groups, read_row_group
from drivefine_core.validation.gx_runner import ValidationReport, run_suite
from drivefine_core.validation.params import ValidationParams

SUITE = "features"
_COMMAND = ("cmd_left", "cmd_straight", "cmd_right", "cmd_unknown")


def _image_facts(views: list[bytes | None]) -> tuple[bool, int, int, int]:
    """(all views decode, width, height, largest view bytes); width/height -1 when views disagree."""
    sizes = set()
    ok = True
    for b in views:
        if not b:
            ok = False
            continue
        try:
            with Image.open(io.BytesIO(b)) as img:
                img.load()  # a truncated / corrupt file fails here, not at open
                sizes.add(img.size)
        except Exception:  # noqa: BLE001 - any decoder failure means "not decodable"
            ok = False
    w, h = sizes.pop() if len(sizes) == 1 else (-1, -1)
    return ok, w, h, max((len(b) for b in views if b), default=0)


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    n = table.num_rows
    n_views = table.schema.field("images").type.list_size
    flat = table["images"].combine_chunks().flatten().to_pylist()
    facts = [_image_facts(flat[i * n_views : (i + 1) * n_views]) for i in range(n)]
    vel = fixed_list_to_numpy(table["velocity"], (2,)).astype(np.float64)
    acc = fixed_list_to_numpy(table["acceleration"], (2,)).astype(np.float64)
    cmd = fixed_list_to_numpy(table["command"], (4,)).astype(np.float64)
    hist = fixed_list_to_numpy(table["history"], (12,))
    target = fixed_list_to_numpy(table["target"], (24,))
    tokens = fixed_list_to_numpy(table["target_tokens"], (24,)).astype(np.int64)
    is_h = tokenizer.position_is_heading(24)
    cols: dict[str, Any] = {
        "log_name": table["log_name"].to_pylist(),
        "token": table["token"].to_pylist(),
        "image_decodable": [f[0] for f in facts],
        "image_width": [f[1] for f in facts],
        "image_height": [f[2] for f in facts],
        "image_bytes": [f[3] for f in facts],
        "vx": vel[:, 0],
        "vy": vel[:, 1],
        "ax": acc[:, 0],
        "ay": acc[:, 1],
        "history_finite": np.isfinite(hist).all(axis=1),
        "target_finite": np.isfinite(target).all(axis=1),
        "xy_token_min": tokens[:, ~is_h].min(axis=1),
        "xy_token_max": tokens[:, ~is_h].max(axis=1),
        "heading_token_min": tokens[:, is_h].min(axis=1),
        "heading_token_max": tokens[:, is_h].max(axis=1),
        "command_sum": cmd.sum(axis=1),
    }
    for i, name in enumerate(_COMMAND):
        cols[name] = cmd[:, i]
    return pd.DataFrame(cols)


def feature_expectations(fp: FeatureParams, p: ValidationParams) -> list[Any]:
    import great_expectations.expectations as gxe

    xy_max = tokenizer.XY_BINS - 1
    h_lo, h_hi = tokenizer.HEADING_OFFSET, tokenizer.VOCAB_SIZE - 1
    ex: list[Any] = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{c} present") for c in ("token", "log_name", "vx", "vy", "ax", "ay")
    ]
    ex += [
        gxe.ExpectColumnValuesToBeUnique(column="token", description="one row per scene"),
        gxe.ExpectColumnValuesToBeInSet(column="image_decodable", value_set=[True], description="every camera view decodes"),
        gxe.ExpectColumnValuesToBeBetween(column="image_width", min_value=fp.image_width, max_value=fp.image_width, description="image width as in params"),
        gxe.ExpectColumnValuesToBeBetween(column="image_height", min_value=fp.image_height, max_value=fp.image_height, description="image height as in params"),
        gxe.ExpectColumnValuesToBeBetween(column="image_bytes", min_value=1, max_value=p.max_image_bytes, description="encoded image size"),
        gxe.ExpectColumnValuesToBeBetween(
            column="vx", min_value=-p.max_reverse_speed_mps, max_value=p.max_speed_mps, description="longitudinal speed in range"
        ),
        gxe.ExpectColumnValuesToBeBetween(column="vy", min_value=-p.max_speed_mps, max_value=p.max_speed_mps, description="lateral speed in range"),
        gxe.ExpectColumnValuesToBeBetween(column="ax", min_value=-p.max_abs_accel_mps2, max_value=p.max_abs_accel_mps2, description="acceleration in range"),
        gxe.ExpectColumnValuesToBeBetween(column="ay", min_value=-p.max_abs_accel_mps2, max_value=p.max_abs_accel_mps2, description="acceleration in range"),
        gxe.ExpectColumnValuesToBeInSet(column="history_finite", value_set=[True], description="history poses finite"),
        gxe.ExpectColumnValuesToBeInSet(column="target_finite", value_set=[True], description="target poses finite"),
        gxe.ExpectColumnValuesToBeBetween(column="xy_token_min", min_value=0, max_value=xy_max, description="x/y tokens in the x/y bins"),
        gxe.ExpectColumnValuesToBeBetween(column="xy_token_max", min_value=0, max_value=xy_max, description="x/y tokens in the x/y bins"),
        gxe.ExpectColumnValuesToBeBetween(column="heading_token_min", min_value=h_lo, max_value=h_hi, description="heading tokens in the heading bins"),
        gxe.ExpectColumnValuesToBeBetween(column="heading_token_max", min_value=h_lo, max_value=h_hi, description="heading tokens in the heading bins"),
        gxe.ExpectColumnValuesToBeBetween(column="command_sum", min_value=1, max_value=1, description="driving command is one-hot"),
    ]
    ex += [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[0, 1], description="driving command is one-hot") for c in _COMMAND]
    return ex


def features_to_frame(features: str | pa.Table | Iterable[pa.Table], logs: list[str] | None = None) -> pd.DataFrame:
    """The derived GX table of a store URI (optionally some logs only), one Arrow table, or an iterable
    of tables (row groups)."""
    if isinstance(features, str):
        tables: Iterable[pa.Table] = (read_row_group(g) for g in list_row_groups(features, logs))
    elif isinstance(features, pa.Table):
        tables = [features]
    else:
        tables = features
    parts = [table_to_frame(t) for t in tables]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["log_name"])


def validate_features(
    features: str | pa.Table | Iterable[pa.Table],
    feature_params: FeatureParams | None = None,
    params: ValidationParams | None = None,
    logs: list[str] | None = None,
) -> ValidationReport:
    """One GX validation over the features of every log (or of `logs` only, for a store URI: e.g. the
    logs a build just wrote); images are decoded to check them."""
    p = params or ValidationParams()
    fp = feature_params or FeatureParams()
    return run_suite(features_to_frame(features, logs), feature_expectations(fp, p), SUITE, p.example_values)


def validate_features_by_log(
    features: str | pa.Table | Iterable[pa.Table],
    feature_params: FeatureParams | None = None,
    params: ValidationParams | None = None,
    logs: list[str] | None = None,
) -> dict[str, list[str]]:
    """log_name -> descriptions of the failed expectations ([] for a log that passed)."""
    return validate_features(features, feature_params, params, logs).by_log
