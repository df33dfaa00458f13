"""Params of the pipeline itself (not of a model or a data stage): run, tracking, promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivefine_core.models.modes import MODES, Mode
from drivefine_core.params_base import Section
from drivefine_core.storage.safe_paths import safe_name


class RunParams(Section):
    seed: int = 0
    stage_retries: int = Field(2, ge=0, description="retries of a stage that failed transiently")
    retry_delay_s: float = Field(5.0, ge=0.0)
    push_to_remote: bool = True  # `dvc push` the outputs to the default remote at the end of a flow run
    # Packages whose versions the check_env stage records (lineage of the software, not just the code).
    record_packages: list[str] = Field(
        default_factory=lambda: ["torch", "numpy", "pyarrow", "mlflow", "prefect", "dvc", "accelerate", "great_expectations"]
    )


class TrackingParams(Section):
    experiment: str = "drivefine"
    # Used only when MLFLOW_TRACKING_URI is unset: the embedded default.
    default_tracking_uri: str = "sqlite:///mlflow.db"
    registered_model: str = "drivefine-planner"
    # An MLflow server that does not answer fails a command or stage at its first request, after about
    # http_connect_timeout_s x (retries + 1) plus the backoff (1 s, 2 s, ...), with its URI named - not after
    # MLflow's own 120 s x 8 tries. Later requests wait http_timeout_s: an artifact upload through the
    # server's proxy is answered only once the server has stored it (on S3 for a large model).
    http_connect_timeout_s: int = Field(5, ge=1, le=600, description="the first MLflow request of a process")
    http_timeout_s: int = Field(120, ge=1, le=3600, description="later requests (MLFLOW_HTTP_REQUEST_TIMEOUT)")
    http_max_retries: int = Field(2, ge=0, le=10, description="MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    http_backoff_factor: int = Field(1, ge=0, le=120, description="MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")


class PromotionParams(Section):
    primary_metric: Literal["v2/epdms", "v1/pdms"] = "v2/epdms"
    min_gain: float = Field(0.0, ge=0.0, description="candidate must beat the champion by more than this")
    max_regression_nc: float = Field(0.01, ge=0.0)
    max_regression_dac: float = Field(0.01, ge=0.0)


class DataSourceParams(Section):
    """Where the driving logs come from: the synthetic world (generate stage) or a NAVSIM download."""

    # "synthetic", or the root of a NAVSIM download (local path or s3:// URI) holding
    # navsim_logs/<split>/*.pkl and sensor_blobs/<split>/...
    source: str = "synthetic"
    split_dirs: list[str] = Field(default_factory=lambda: ["train", "test"], min_length=1)
    # nuPlan maps root (holds nuplan-maps-v1.0.json); empty: <source>/maps (the synthetic layout)
    maps_root: str = ""
    # camera JPEGs (path or s3:// URI) holding <split>/<log>/<CAM>/<token>.jpg; empty: <source>/sensor_blobs
    sensor_blobs: str = ""

    @field_validator("split_dirs")
    @classmethod
    def _plain_split_dirs(cls, value: list[str]) -> list[str]:
        return [safe_name(v, "split_dirs entry") for v in value]  # a folder under navsim_logs/ and sensor_blobs/

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


class CurationParams(Section):
    """A harder test split, curated as NAVSIM curated navtest: scenes a trivial plan already solves (constant
    velocity scores >= max_constant_velocity) and scenes the human does not solve (< min_human) are left out."""

    enabled: bool = True
    metric: Literal["v1/pdms", "v2/epdms"] = "v1/pdms"
    max_constant_velocity: float = Field(0.8, ge=0, le=1)
    min_human: float = Field(0.8, ge=0, le=1)


class EvaluateParams(Section):
    split: str = "test"
    # Planner variants scored side by side: baselines + modes of the planners after SFT and after RL.
    baselines: list[Literal["constant_velocity", "ego_mlp", "human", "pdm_closed"]] = Field(
        default_factory=lambda: ["constant_velocity", "ego_mlp", "human", "pdm_closed"])
    modes: list[Mode] = Field(default_factory=lambda: list(MODES))
    stages: list[Literal["sft", "rl"]] = Field(default_factory=lambda: ["sft", "rl"])
    batch_size: int = Field(32, ge=1)
    seed: int = 0
    report_scenes: int = Field(2, ge=0, description="best and worst scenes drawn in the report (each)")
    # camera ablation: these modes of the last stage are also scored with every scene's camera taken from a
    # scene of another log ("<stage>/<mode>/shuffled-camera"); a planner that perceives loses points there
    shuffled_camera_modes: list[Mode] = Field(
        default_factory=lambda: ["mdm+refine", "flow"])
    # every variant is also scored on the curated scenes (metrics "curated/<variant>/...")
    curated: CurationParams = CurationParams()

    @model_validator(mode="after")
    def _curation_needs_baselines(self) -> "EvaluateParams":
        missing = [b for b in ("constant_velocity", "human") if b not in self.baselines]
        if self.curated.enabled and missing:
            raise ValueError(f"evaluate.curated.enabled needs {missing} in evaluate.baselines")
        return self
