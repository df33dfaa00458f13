"""Knobs of the feature cache (build side) and of the streaming loader (read side).

Only the build-side fields enter the feature key: changing the loader's shuffle buffer must not
recompute the cache, changing the image size must recompute all of it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator

from drivefine_core.data.schema import CAMERA_NAMES
from drivefine_core.params_base import Section

# Bumped whenever the Parquet layout or the meaning of a column changes; part of the feature key.
SCHEMA_VERSION = 1

# Fields that change the bytes of the cache. Everything else only changes how it is read.
_BUILD_FIELDS = ("image_width", "image_height", "cameras", "image_format", "jpeg_quality", "row_group_size")


class FeatureParams(Section):
    # Must equal the planner's ModelParams.image_width / image_height (and len(cameras) its num_views).
    image_width: int = Field(128, ge=8, le=4096)
    image_height: int = Field(64, ge=8, le=4096)
    # Views of the current frame, in the order they are stacked. ("CAM_L0", "CAM_F0", "CAM_R0") for the
    # multi-view planner.
    cameras: list[str] = Field(default_factory=lambda: ["CAM_F0"], min_length=1)
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(90, ge=1, le=95)
    # Rows per Parquet row group: the unit a loader worker reads and the unit of sharding across
    # workers / ranks, so smaller groups balance better; larger ones read faster from S3.
    row_group_size: int = Field(32, ge=1)
    # Largest camera file read from the sensor blobs; a larger (or non-regular) file fails its log.
    # Not part of the key: it refuses input, it does not change the bytes written.
    max_source_image_bytes: int = Field(20_000_000, ge=1)
    # Processes building logs in parallel (1 = in this process). Not part of the key: same bytes either way.
    build_workers: int = Field(1, ge=1)
    # Loader side.
    shuffle_buffer: int = Field(256, ge=1, description="samples held per worker for shuffling")
    shuffle: bool = True
    seed: int = 0

    @field_validator("cameras")
    @classmethod
    def _known_cameras(cls, cameras: list[str]) -> list[str]:
        unknown = [c for c in cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; allowed: {list(CAMERA_NAMES)}")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras listed twice: {cameras}")
        return cameras

    def build_dict(self) -> dict[str, object]:
        """The fields (plus the schema version) that determine the cached bytes."""
        out: dict[str, object] = {k: getattr(self, k) for k in _BUILD_FIELDS}
        out["schema_version"] = SCHEMA_VERSION
        return out

    def build_digest(self) -> str:
        """Stable hex digest of build_dict(): the feature-params half of a partition's key."""
        blob = json.dumps(self.build_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
