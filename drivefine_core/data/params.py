"""Knobs of the data readers and ingest (the `ingest:` and `map:` sections of params.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivefine_core.params_base import Section
from drivefine_core.storage.safe_paths import safe_name


class SceneFilter(Section):
    """Which windows of a log become scenes (NAVSIM's SceneFilter semantics)."""

    num_history_frames: int = Field(4, ge=1)  # the current frame is the last history frame
    num_future_frames: int = Field(10, ge=0)
    frame_interval: int | None = Field(None, ge=1)  # None: non-overlapping windows (= window length)
    has_route: bool = True  # drop windows whose current frame has no roadblock_ids
    log_names: list[str] | None = None  # keep only these logs (None: all)
    tokens: list[str] | None = None  # keep only scenes with these current-frame tokens (None: all)
    max_scenes: int | None = Field(None, ge=1)  # stop after this many scenes in total

    @property
    def num_frames(self) -> int:
        return self.num_history_frames + self.num_future_frames

    @property
    def stride(self) -> int:
        return self.frame_interval if self.frame_interval is not None else self.num_frames


class SplitParams(Section):
    """Train/test assignment, always by whole log so that no log leaks across splits."""

    mode: Literal["hash", "folder"] = "hash"
    test_fraction: float = Field(0.2, ge=0.0, le=1.0)  # hash mode: share of logs sent to "test"
    salt: str = "drivefine-v1"  # hash mode: change to draw a different deterministic split
    train_name: str = "train"
    test_name: str = "test"
    folder_map: dict[str, str] = Field(default_factory=dict)  # folder mode: split dir -> split name

    @field_validator("train_name", "test_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return safe_name(value, "split name")  # becomes a file / folder name under data/

    @field_validator("folder_map")
    @classmethod
    def _plain_folders(cls, value: dict[str, str]) -> dict[str, str]:
        for folder, split in value.items():
            safe_name(folder, "folder_map key (split folder)")
            safe_name(split, f"folder_map[{folder!r}] (split name)")
        return value

    @model_validator(mode="after")
    def _names_differ(self) -> "SplitParams":
        if self.train_name == self.test_name:
            raise ValueError("train_name and test_name must differ")
        return self


class IngestParams(Section):
    scene_filter: SceneFilter = Field(default_factory=SceneFilter)
    split: SplitParams = Field(default_factory=SplitParams)
    require_annotations: bool = False  # hidden test splits carry no `anns`
    # cameras every frame must carry (others are read when present); real NAVSIM logs carry all eight
    required_cameras: list[str] = Field(default_factory=lambda: ["CAM_F0"])
    row_group_scenes: int = Field(256, ge=1)  # scenes per Parquet row group (bounds memory while writing)
    # Limits on what one log may ask for: a larger file, or an array with more elements, quarantines the log.
    max_log_bytes: int = Field(1 << 30, ge=1, description="size of one log pickle")
    max_array_elements: int = Field(10_000_000, ge=1, description="elements of one numpy array inside a log")


class MapParams(Section):
    route_repair_depth: int = Field(6, ge=0)  # roadblocks the BFS may insert to close a route gap
    start_search_radius_m: float = Field(20.0, gt=0)  # how far to look for the lane under the start pose
    heading_weight_m_per_rad: float = Field(5.0, ge=0)  # start-lane choice: metres of distance per rad off-heading

