"""The one batch contract the planners read: `PlannerBatch`, built from feature rows (training, evaluation)
and from serving requests alike, checked once with errors that name the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from drivefine_core.features.tokenizer import HEADING_OFFSET, position_is_heading
from drivefine_core.models.params import NUM_ANSWER_TOKENS, NUM_HISTORY_POSES, NUM_POSES, ModelParams

Batch = Mapping[str, Tensor]  # what the models read: a PlannerBatch, or a plain dict with the same keys


@dataclasses.dataclass(frozen=True, eq=False)
class PlannerBatch(Mapping[str, Tensor]):
    """A batch of B scenes. V camera views, H x W pixels, C BEV channels, F x L BEV cells (ModelParams).

    image          (B, 3V, H, W) float in [0, 1]; the views stacked on channels in camera order
    command        (B, 4) one-hot [left, straight, right, unknown]
    velocity       (B, 2) ego frame, m/s
    acceleration   (B, 2) ego frame, m/s^2
    history        (B, 4, 3) past poses (x m, y m, heading rad) in the current ego frame, the last at the origin
    Training fields (None where a batch has none):
    target         (B, 8, 3) future poses 0.5 .. 4.0 s, ego frame
    target_tokens  (B, 24) long: the tokenizer's ids of `target`
    bev            (B, C, F, L) auxiliary BEV raster targets; bev_valid (B,) 1 where the raster exists
    prompt_kv      (B, layers, 2, heads, P, head_dim) the frozen SpanVLA VLM's prompt keys/values, cached by
                   SFT's flow phase (training/prompt_cache.py); the flow experts read them instead of
                   running the VLM

    Reads as a Mapping of its present fields (batch["image"], "bev" in batch), so models index it by name.
    """

    image: Tensor
    command: Tensor
    velocity: Tensor
    acceleration: Tensor
    history: Tensor
    target: Tensor | None = None
    target_tokens: Tensor | None = None
    bev: Tensor | None = None
    bev_valid: Tensor | None = None
    prompt_kv: Tensor | None = None

    @classmethod
    def of(cls, fields: Mapping[str, Any], device: torch.device | str | None = None) -> PlannerBatch:
        """From collated feature rows or a serving request's tensors: camera views (B, V, 3, H, W) are folded
        onto channels (the only place that happens), tensors moved to `device`, other keys (scene tokens,
        log names) left out. A missing prompt field or a non-tensor value is a ValueError naming the field."""
        if not isinstance(fields, Mapping):  # e.g. a list of uncollated feature rows
            raise TypeError(f"batch: expected a mapping of field name -> tensor, got {type(fields).__name__} "
                            "(collate rows with features.dataset.collate_features first)")
        values: dict[str, Tensor] = {}
        for name in FIELDS:
            if name not in fields:
                if name in PROMPT_FIELDS:
                    raise ValueError(f"batch: missing field '{name}' (have {sorted(fields)})")
                continue
            t = fields[name]
            if not isinstance(t, Tensor):
                raise ValueError(f"batch field '{name}': expected a torch.Tensor, got {type(t).__name__}")
            if name == "image" and t.dim() == 5:
                t = t.flatten(1, 2)
            values[name] = t if device is None else t.to(device)
        return cls(**values)

    def __getitem__(self, name: str) -> Tensor:
        value = getattr(self, name, None) if name in FIELDS else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (n for n in FIELDS if getattr(self, n) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def map(self, fn: Any) -> PlannerBatch:
        """Every present field through `fn` (Tensor -> Tensor), e.g. a sample selection."""
        return PlannerBatch(**{n: fn(t) for n, t in self.items()})

    def without(self, *names: str) -> PlannerBatch:
        return dataclasses.replace(self, **{n: None for n in names})


FIELDS = tuple(f.name for f in dataclasses.fields(PlannerBatch))


def expected_shapes(p: ModelParams) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes (batch dimension left out)."""
    return {
        "image": (p.num_views * 3, p.image_height, p.image_width),
        "command": (4,),
        "velocity": (2,),
        "acceleration": (2,),
        "history": (NUM_HISTORY_POSES, 3),
        "target": (NUM_POSES, 3),
        "target_tokens": (NUM_ANSWER_TOKENS,),
    }


PROMPT_FIELDS = ("image", "command", "velocity", "acceleration", "history")


def check_batch(batch: Batch, p: ModelParams, fields: Iterable[str] = PROMPT_FIELDS) -> int:
    """Raise ValueError naming the first missing / misshapen field; return the batch size."""
    shapes = expected_shapes(p)
    size: int | None = None
    for name in fields:
        if name not in batch:
            raise ValueError(f"batch: missing field '{name}' (have {sorted(batch)})")
        t = batch[name]
        if not isinstance(t, Tensor):
            raise ValueError(f"batch field '{name}': expected a torch.Tensor, got {type(t).__name__}")
        if tuple(t.shape[1:]) != shapes[name]:
            raise ValueError(f"batch field '{name}': expected shape (B, {', '.join(map(str, shapes[name]))}), "
                             f"got {tuple(t.shape)}")
        if name == "target_tokens" and t.dtype != torch.long:
            raise ValueError(f"batch field 'target_tokens': expected dtype torch.long, got {t.dtype}")
        if name == "target_tokens" and t.numel() and (int(t.min()) < 0 or int(t.max()) >= p.vocab_size):
            raise ValueError(f"batch field 'target_tokens': ids must lie in [0, {p.vocab_size}), "
                             f"got [{int(t.min())}, {int(t.max())}]")
        if name == "target_tokens":
            _check_token_kinds(t)
        if name == "image" and not t.is_floating_point():
            raise ValueError(f"batch field 'image': expected floats in [0, 1], got dtype {t.dtype}")
        if size is None:
            size = t.shape[0]
        elif t.shape[0] != size:
            raise ValueError(f"batch field '{name}': batch size {t.shape[0]} differs from {size}")
    if size is None:
        raise ValueError("batch: no field checked")
    return size


def _check_token_kinds(tokens: Tensor) -> None:
    """x/y positions must hold x/y bins and heading positions heading bins (the tokenizer's layout)."""
    is_heading = torch.from_numpy(position_is_heading(tokens.shape[-1])).to(tokens.device)
    wrong = (tokens >= HEADING_OFFSET) != is_heading
    if bool(wrong.any()):
        sample, pos = (int(i) for i in wrong.nonzero()[0])
        raise ValueError(f"batch field 'target_tokens': sample {sample} position {pos} holds token "
                         f"{int(tokens[sample, pos])}, which is not a {'heading' if pos % 3 == 2 else 'x/y'} bin")


def as_batch(batch: Batch) -> PlannerBatch:
    return batch if isinstance(batch, PlannerBatch) else PlannerBatch.of(batch)


def repeat_batch(batch: Batch, n: int) -> PlannerBatch:
    """Each sample repeated n times in a row (b0 b0 b1 b1 ...), e.g. for a GRPO group."""
    return as_batch(batch).map(lambda t: t.repeat_interleave(n, dim=0))
