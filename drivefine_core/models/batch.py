"""The batch contract the planners read, checked once with errors that name the field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from drivefine_core.features.tokenizer import HEADING_OFFSET, position_is_heading
from drivefine_core.models.params import NUM_ANSWER_TOKENS, NUM_HISTORY_POSES, NUM_POSES, ModelParams

Batch = Mapping[str, Tensor]


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


def repeat_batch(batch: Batch, n: int) -> dict[str, Tensor]:
    """Each sample repeated n times in a row (b0 b0 b1 b1 ...), e.g. for a GRPO group."""
    return {k: v.repeat_interleave(n, dim=0) for k, v in batch.items()}
