"""params.yaml: every knob of the pipeline, grouped by stage, validated before anything runs.

Each section's model lives beside the code it configures; this module only composes them and turns
pydantic's errors into messages that name the file, the key and the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from drivefine_core.data.params import IngestParams, MapParams
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.features.params import FeatureParams
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.models.params import ModelParams
from drivefine_core.ops.params import OpsParams
from drivefine_core.params_base import Section
from drivefine_core.pipeline_params import DataSourceParams, EvaluateParams, PromotionParams, RunParams, TrackingParams
from drivefine_core.storage.params import StorageParams
from drivefine_core.training.params import RLParams, SFTParams
from drivefine_core.validation.params import ValidationParams


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the key."""


class Params(Section):
    run: RunParams = RunParams()
    tracking: TrackingParams = TrackingParams()
    data: DataSourceParams = DataSourceParams()
    generate: GenerateParams = GenerateParams()
    ingest: IngestParams = IngestParams()
    map: MapParams = MapParams()
    validation: ValidationParams = ValidationParams()
    storage: StorageParams = StorageParams()
    features: FeatureParams = FeatureParams()
    metrics: MetricsParams = MetricsParams()
    model: ModelParams = ModelParams()
    sft: SFTParams = SFTParams()
    rl: RLParams = RLParams()
    evaluate: EvaluateParams = EvaluateParams()
    promotion: PromotionParams = PromotionParams()
    ops: OpsParams = OpsParams()

    @model_validator(mode="after")
    def _sections_agree(self) -> "Params":
        """Knobs that two stages must agree on (the cache feeds the model)."""
        f, m = self.features, self.model
        if (f.image_height, f.image_width) != (m.image_height, m.image_width):
            raise ValueError(f"features.image_height/width ({f.image_height}x{f.image_width}) must equal "
                             f"model.image_height/width ({m.image_height}x{m.image_width})")
        if len(f.cameras) != m.num_views:
            raise ValueError(f"model.num_views ({m.num_views}) must equal the number of features.cameras "
                             f"({f.cameras})")
        if self.data.synthetic:
            missing = [c for c in f.cameras if c not in self.generate.cameras]
            if missing:
                raise ValueError(f"features.cameras {missing} are not rendered by generate.cameras "
                                 f"({self.generate.cameras})")
        return self


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc` (for listing the allowed keys)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return current
        annotation = current.model_fields[part].annotation
        nested = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = nested[0] if nested else None
    return current


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(whole file)"
    if error["type"] == "extra_forbidden":
        owner = _model_at(Params, loc[:-1])
        allowed = ", ".join(sorted(owner.model_fields)) if owner else "?"
        return f"{key}: unknown key (allowed keys here: {allowed})"
    got = error.get("input")
    return f"{key}: {error['msg']} (got {got!r})"


def parse_params(data: dict[str, Any], source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{source} is invalid:\n  {lines}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: file not found (run from the repository root)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return parse_params(data, str(path))


def load_ops_params(repo_root: str | Path = ".") -> OpsParams:
    """The `ops` section of <repo_root>/params.yaml, validated with the rest of the file; the defaults
    when the file is absent (the flows then run with no configuration)."""
    path = Path(repo_root) / "params.yaml"
    return load_params(path).ops if path.exists() else OpsParams()


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, (dict, BaseModel)) else {key: v})
    return out
