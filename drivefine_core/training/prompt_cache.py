"""The flow phase's cache of the frozen VLM's prompt keys/values.

SpanVLA's flow experts train after the VLM (sft.py): the VLM is frozen and read without gradient, so its
prompt pass over a sample yields the same keys/values at every epoch. Computing them once per sample rather
than once per step takes the VLM out of the flow phase's steps. The cache holds, for every sample, every
layer's keys and values (layers x 2 x heads x prompt length x head size floats: 160 KB at the ladder's size,
about 0.7 GB for its 4,488 samples), so it is built only when it fits `sft.flow_prompt_cache_mb`; otherwise
each step encodes its batch as before. With dropout the VLM's training-mode pass is random, so the cache is
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
from drivefine_core.models.layers import KV, stack_kv

log = logging.getLogger(__name__)

Encode = Callable[[PlannerBatch], list[KV]]


def prompt_kv_of(encode: Encode, dataset: Sequence[Any], max_mb: float, device: torch.device,
                 chunk: int = 64) -> Tensor | None:
    """(N, layers, 2, heads, prompt, head size) keys/values of every sample of `dataset` under `encode` (run
    without gradient), on `device`; None when they would take more than `max_mb` MiB (or max_mb is 0)."""
    n = len(dataset)
    if max_mb <= 0 or n == 0:
        return None
    out: Tensor | None = None
    with torch.no_grad():
        for start in range(0, n, chunk):
            rows = [dataset[i] for i in range(start, min(n, start + chunk))]
            kv = stack_kv(encode(PlannerBatch.of(collate_features(rows), device)))
            if out is None:
                need_mb = kv[0].numel() * kv.element_size() * n / 2**20
                if need_mb > max_mb:
                    log.info("flow phase: the VLM's prompt keys/values would take %.0f MiB > %.0f MiB "
                             "(sft.flow_prompt_cache_mb): encoding every step instead", need_mb, max_mb)
                    return None
                out = kv.new_empty((n, *kv.shape[1:]))
            out[start : start + len(rows)] = kv
    return out


class WithPromptKV(Sequence[dict[str, Any]]):
    """`dataset`'s samples, each with its row of the cache as the field 'prompt_kv'."""

    def __init__(self, dataset: Sequence[dict[str, Any]], kv: Tensor) -> None:
        if len(kv) != len(dataset):
            raise ValueError(f"prompt cache holds {len(kv)} samples, the dataset {len(dataset)}")
        self.dataset, self.kv = dataset, kv

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        return {**self.dataset[i], "prompt_kv": self.kv[i]}
