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
from drivefine_core.executor.params import ExecutorParams
from drivefine_core.features.params import FeatureParams
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.models.params import ModelParams
from drivefine_core.ops.params import OpsParams
from drivefine_core.params_base import Section
from drivefine_core.pipeline_params import DataSourceParams, EvaluateParams, PromotionParams, RunParams, TrackingParams
from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.safe_paths import shown
from drivefine_core.training.params import LaunchParams, RLParams, SFTParams
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
    launch: LaunchParams = LaunchParams()
    evaluate: EvaluateParams = EvaluateParams()
    promotion: PromotionParams = PromotionParams()
    ops: OpsParams = OpsParams()
    executor: ExecutorParams = ExecutorParams()

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
    return f"{key}: {error['msg'][:300]} (got {shown(got)})"


def parse_params(data: dict[str, Any], source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = "\n  ".join([_describe(e) for e in errors[:20]] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else []))
        raise ParamsError(f"{source} is invalid:\n  {lines}") from None


MAX_PARAMS_BYTES = 1 << 20  # params.yaml is a few KB; anything near this is not a params file
MAX_YAML_ALIASES = 100  # anchors reused more often than this are refused
MAX_YAML_NODES = 100_000  # nodes after expanding every alias: a "billion laughs" file expands to billions


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping and caps alias expansions."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} alias references (*name) at line "
                                     f"{mark.line + 1}: refused (nested aliases can expand without bound)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.YAMLError(f"duplicate key {shown(key)} at line {key_node.start_mark.line + 1} "
                                     f"(first at line {seen[key]}): which value is meant is ambiguous")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_yaml_strict(path: Path) -> Any:
    """A YAML file read for params: size-capped, aliases capped, duplicate keys refused."""
    size = path.stat().st_size
    if size > MAX_PARAMS_BYTES:
        raise ParamsError(f"{path}: {size} bytes, over the limit of {MAX_PARAMS_BYTES} for a params file")
    loader = _StrictLoader(path.read_text())
    try:
        node = loader.get_single_node()  # composed, aliases not yet expanded
        if node is None:
            return None
        expanded = _expanded_nodes(node, {})
        if expanded > MAX_YAML_NODES:
            raise yaml.YAMLError(f"expands to {expanded} nodes through aliases (limit {MAX_YAML_NODES}): refused")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {str(exc)[:1000]}") from None
    finally:
        loader.dispose()


def _expanded_nodes(node: Any, memo: dict[int, int]) -> int:
    """How many nodes the document has once every alias is expanded (shared nodes counted per use)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once; the constructor refuses or handles it
    if isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_nodes(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    else:
        n = 1
    memo[id(node)] = n
    return n


def load_params(path: str | Path = "params.yaml") -> Params:
    """params.yaml validated; an empty file is refused (it would silently run on the code's defaults)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: file not found (run from the repository root)")
    data = read_yaml_strict(path)
    if data is None or data == {}:
        raise ParamsError(f"{path}: the file is empty; refusing to run on the code's defaults "
                          "(write the sections to use, e.g. restore params.yaml from git)")
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
