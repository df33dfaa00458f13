"""Learning-rate schedule and per-step seeding: small pure functions the loop builds on."""

from __future__ import annotations

import hashlib
import math

import torch


def cosine_with_warmup(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): linear warm-up over `warmup` steps
    (starting at 1/warmup, never 0, so the first step already learns), then cosine from 1 to `min_ratio`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (seed, step, micro-step, rank, purpose...). Stable across runs and
    processes (unlike hash()), so a resumed run draws exactly the random numbers the uninterrupted one did."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def step_generator(device: torch.device, *parts: object) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g
