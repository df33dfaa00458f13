"""The flow phase's cache of the frozen VLM's prompt keys/values.

SpanVLA's flow experts train after the VLM (sft.py): the VLM is frozen and read without gradient, so its
prompt pass over a sample yields the same keys/values at every epoch. Computing them once per sample rather
than once per step takes the VLM out of the flow phase's steps. The cache holds, for every sample, every
layer's keys and values (layers x 2 x heads x prompt length x head size floats: 160 KB at the ladder's size,
about 0.7 GB for its 4,488 samples) and, when the experts read it, the VLM's BEV prediction (12 KB), so it is
built only when it fits `sft.flow_prompt_cache_mb`; otherwise each step encodes its batch as before. With dropout the VLM's training-mode pass is random, so the cache is
not used then (it would change what the experts see).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from drivefine_core.features.dataset import collate_features
from drivefine_core.models.batch import PlannerBatch
from drivefine_core.models.flow import FlowContext
from drivefine_core.models.layers import stack_kv

log = logging.getLogger(__name__)

Encode = Callable[[PlannerBatch], FlowContext]


class PromptContextCache:
    """Every sample's row of the frozen VLM's context: `kv` (N, layers, 2, heads, prompt, head size) and `bev`
    (N, C, F, L) or None."""

    def __init__(self, kv: Tensor, bev: Tensor | None) -> None:
        self.kv, self.bev = kv, bev

    def __len__(self) -> int:
        return len(self.kv)


def prompt_context_of(encode: Encode, dataset: Sequence[Any], max_mb: float, device: torch.device,
                      chunk: int = 64) -> PromptContextCache | None:
    """The context (keys/values, BEV prediction) of every sample of `dataset` under `encode` (run without
    gradient), on `device`; None when it would take more than `max_mb` MiB (or max_mb is 0)."""
    n = len(dataset)
    if max_mb <= 0 or n == 0:
        return None
    out: PromptContextCache | None = None
    with torch.no_grad():
        for start in range(0, n, chunk):
            rows = [dataset[i] for i in range(start, min(n, start + chunk))]
            ctx = encode(PlannerBatch.of(collate_features(rows), device))
            kv = stack_kv(ctx.kv)
            if out is None:
                per_sample = kv[0].numel() * kv.element_size()
                per_sample += ctx.bev[0].numel() * ctx.bev.element_size() if ctx.bev is not None else 0
                if per_sample * n / 2**20 > max_mb:
                    log.info("flow phase: the VLM's prompt context would take %.0f MiB > %.0f MiB "
                             "(sft.flow_prompt_cache_mb): encoding every step instead", per_sample * n / 2**20, max_mb)
                    return None
                out = PromptContextCache(kv.new_empty((n, *kv.shape[1:])),
                                         None if ctx.bev is None else ctx.bev.new_empty((n, *ctx.bev.shape[1:])))
            out.kv[start : start + len(rows)] = kv
            if out.bev is not None and ctx.bev is not None:
                out.bev[start : start + len(rows)] = ctx.bev
    return out


class WithPromptKV(Sequence[dict[str, Any]]):
    """`dataset`'s samples, each with its row of the cache as the fields 'prompt_kv' (and 'prompt_bev')."""

    def __init__(self, dataset: Sequence[dict[str, Any]], cache: PromptContextCache) -> None:
        if len(cache) != len(dataset):
            raise ValueError(f"prompt cache holds {len(cache)} samples, the dataset {len(dataset)}")
        self.dataset, self.cache = dataset, cache

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        row = {**self.dataset[i], "prompt_kv": self.cache.kv[i]}
        if self.cache.bev is not None:
            row["prompt_bev"] = self.cache.bev[i]
        return row
