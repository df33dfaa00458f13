"""Knobs of the operations layer: new-log ingestion from S3, the DVC remote, which stages need a GPU,
what the served model accepts.

The `ops` section of params.yaml; drivefine_core.config.load_ops_params reads it (these defaults when
the section or the file is absent, so the flows run on a laptop with no configuration).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from drivefine_core.params_base import Section

# Where the S3 remote URL comes from when it is not in params.yaml (set by compose / k8s).
REMOTE_URL_ENV = "DRIVEFINE_DVC_REMOTE_URL"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class IngestLogsParams(Section):
    bucket: str = Field("drivefine-raw", min_length=3, description="S3 bucket that receives new driving logs")
    prefix: str = Field("navsim_logs", description="logs are <prefix>/<split>/<log>.pkl")
    splits: list[str] = Field(default_factory=list, description="splits to take; empty = every split found")
    # Outside /data/ because the repository git-ignores /data/ and DVC refuses a git-ignored .dvc file.
    dest_dir: str = Field("incoming/navsim_logs", description="DVC-tracked folder, relative to the repo root")
    max_new_per_run: int = Field(0, ge=0, description="cap on logs downloaded per run; 0 = no cap")
    trigger: Literal["subflow", "deployment", "none"] = "subflow"
    retrain_deployment: str = Field("retrain-routed/nightly-retrain",
                                    description="<flow>/<deployment> run when trigger=deployment")
    commit: bool = True  # git commit the .dvc file of the new data version
    push: bool = True  # dvc push the new data version to the default remote
    git_push: bool = False  # also `git push` the commit (workers with a git remote and credentials)

    @field_validator("dest_dir")
    @classmethod
    def _relative(cls, v: str) -> str:
        p = Path(v)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise ValueError(f"must be a relative path inside the repository, got {v!r}")
        return v

    @field_validator("splits")
    @classmethod
    def _safe_splits(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if not _SAFE_NAME.match(s)]
        if bad:
            raise ValueError(f"split names must be plain folder names, got {bad}")
        return v


class DvcRemoteParams(Section):
    name: str = Field("s3", pattern=r"^[A-Za-z0-9_-]+$")
    # s3://bucket/prefix. Empty: use DRIVEFINE_DVC_REMOTE_URL, else keep the repository's own default remote.
    url: str = ""
    region: str | None = None
    make_default: bool = True

    @field_validator("url")
    @classmethod
    def _s3_url(cls, v: str) -> str:
        if v and not v.startswith("s3://"):
            raise ValueError(f"must be an s3://bucket/prefix URL (or empty), got {v!r}")
        return v


class RoutingParams(Section):
    gpu_stages: list[str] = Field(default_factory=lambda: ["sft", "rl", "evaluate"])
    # <flow>/<deployment> that runs GPU stages on the GPU pool; empty = run them in this process.
    gpu_deployment: str = ""
    gpu_timeout_s: float = Field(6 * 3600.0, gt=0.0, description="wait at most this long for the GPU run")


class ServingParams(Section):
    """What the served planner accepts (`drivefine serve`, POST /invocations). A request beyond a limit is
    answered 400 naming the row and field; nothing is decoded or planned before these checks pass."""

    max_batch_rows: int = Field(32, ge=1, description="scenes in one request")
    max_image_bytes: int = Field(4 << 20, ge=1024, description="one encoded camera view (after base64)")
    max_image_pixels: int = Field(3840 * 2160, ge=64, description="width x height of one view, from its header")
    max_abs_velocity: float = Field(70.0, gt=0.0, description="m/s, each of vx, vy")
    max_abs_acceleration: float = Field(30.0, gt=0.0, description="m/s^2, each of ax, ay")
    max_abs_history_position: float = Field(300.0, gt=0.0, description="m, x and y of the history poses")
    max_abs_history_heading: float = Field(6.3, gt=0.0, description="rad, heading of the history poses")


class OpsParams(Section):
    ingest: IngestLogsParams = IngestLogsParams()
    remote: DvcRemoteParams = DvcRemoteParams()
    routing: RoutingParams = RoutingParams()
    serving: ServingParams = ServingParams()

