"""Trajectory tokenizer: 8 poses [x, y, heading] <-> 24 discrete tokens.

x and y share 4,000 uniform bins over [-100, 100] m (0.05 m); heading has 1,800 bins over
[-90, 90] deg (0.1 deg). Token ids: x/y bins are 0..3999, heading bins are 4000..5799, so one
vocabulary serves all 24 positions. Decoding returns the bin centre. Values outside the range are
clipped to the edge bin and counted, never wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

XY_BINS = 4000
XY_RANGE = (-100.0, 100.0)
HEADING_BINS = 1800
HEADING_RANGE = (-np.pi / 2, np.pi / 2)
HEADING_OFFSET = XY_BINS
VOCAB_SIZE = XY_BINS + HEADING_BINS
TOKENS_PER_POSE = 3


@dataclass
class ClipCounter:
    """Counts values that fell outside the tokenizer's range."""

    xy: int = 0
    heading: int = 0

    @property
    def total(self) -> int:
        return self.xy + self.heading


def _to_bins(values: np.ndarray, lo: float, hi: float, n: int) -> tuple[np.ndarray, int]:
    width = (hi - lo) / n
    idx = np.floor((values - lo) / width).astype(np.int64)
    clipped = int(np.count_nonzero((idx < 0) | (idx >= n)))
    return np.clip(idx, 0, n - 1), clipped


def encode(poses: np.ndarray, counter: ClipCounter | None = None) -> np.ndarray:
    """(..., P, 3) poses -> (..., P*3) int64 tokens, ordered x0, y0, h0, x1, ..."""
    poses = np.asarray(poses, dtype=np.float64)
    xy, n_xy = _to_bins(poses[..., :2], *XY_RANGE, XY_BINS)
    heading, n_h = _to_bins(poses[..., 2:3], *HEADING_RANGE, HEADING_BINS)
    if counter is not None:
        counter.xy += n_xy
        counter.heading += n_h
    tokens = np.concatenate([xy, heading + HEADING_OFFSET], axis=-1)
    return tokens.reshape(*poses.shape[:-2], poses.shape[-2] * TOKENS_PER_POSE)


def decode(tokens: np.ndarray) -> np.ndarray:
    """(..., P*3) tokens -> (..., P, 3) poses at the bin centres.

    A heading token in an x/y position (or the reverse) is clipped into the valid range of its
    position, so that any model output decodes to a finite trajectory.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    t = tokens.reshape(*tokens.shape[:-1], -1, TOKENS_PER_POSE)
    xy_w = (XY_RANGE[1] - XY_RANGE[0]) / XY_BINS
    h_w = (HEADING_RANGE[1] - HEADING_RANGE[0]) / HEADING_BINS
    xy = XY_RANGE[0] + (np.clip(t[..., :2], 0, XY_BINS - 1) + 0.5) * xy_w
    h_idx = np.clip(t[..., 2:3] - HEADING_OFFSET, 0, HEADING_BINS - 1)
    heading = HEADING_RANGE[0] + (h_idx + 0.5) * h_w
    return np.concatenate([xy, heading], axis=-1)


def position_is_heading(num_tokens: int) -> np.ndarray:
    """Boolean mask over token positions: True where the position holds a heading."""
    return (np.arange(num_tokens) % TOKENS_PER_POSE) == 2
