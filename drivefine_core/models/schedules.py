"""Unmasking schedules for masked-diffusion decoding."""

from __future__ import annotations

import math


def cosine_commit_counts(num_tokens: int, steps: int) -> list[int]:
    """How many tokens to commit at each of `steps` steps, exact integers summing to `num_tokens`.

    The masked fraction after step s follows cos(pi/2 * s/steps) (MaskGIT), so few tokens are committed
    early, when the model knows least, and many late. Every step commits at least one token, so that no
    step is wasted; the spare token is taken from the step with the most.
    """
    if not 1 <= steps <= num_tokens:
        raise ValueError(f"steps must lie in [1, {num_tokens}], got {steps}")
    masked = [round(num_tokens * math.cos(math.pi / 2 * s / steps)) for s in range(steps + 1)]
    masked[0], masked[-1] = num_tokens, 0
    counts = [masked[s] - masked[s + 1] for s in range(steps)]
    for s in range(steps):
        while counts[s] < 1:
            donor = max(range(steps), key=lambda i: (counts[i], i))
            counts[donor] -= 1
            counts[s] += 1
    assert sum(counts) == num_tokens
    return counts
