"""BEV raster targets for the vision towers' auxiliary head, drawn from the metric cache.

Channels: 0 drivable area (every drivable polygon), 1 the route's lanes and connectors, 2 the agents' boxes
at the current time. Cells are `ModelParams.bev_cell_m` wide; rows run forward from the ego (x in
[0, rows * cell)), columns from the left (y from +cols * cell / 2 down to -cols * cell / 2), the area the
front camera sees. Each cell is set when at least half of it is covered (drawn 4x finer, then averaged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models.params import ModelParams

SUPERSAMPLE = 4


def _box_corners(box: np.ndarray) -> np.ndarray:
    x, y, h, length, width = box
    c, s = np.cos(h), np.sin(h)
    local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * [length / 2, width / 2]
    return np.stack([x + c * local[:, 0] - s * local[:, 1], y + s * local[:, 0] + c * local[:, 1]], -1)


def bev_raster(cache: MetricCache, p: ModelParams) -> np.ndarray:
    """(3, rows, cols) uint8 {0, 1} raster of one scene."""
    rows, cols = p.bev_cells
    cell = p.bev_cell_m / SUPERSAMPLE
    half = cols * p.bev_cell_m / 2

    def to_px(xy: np.ndarray) -> list[float]:  # flat (column, row) pairs, as ImageDraw takes them
        return np.stack([(half - xy[:, 1]) / cell, xy[:, 0] / cell], axis=1).ravel().tolist()

    def inside(poly: np.ndarray) -> bool:  # bounding box overlaps the raster (most of a 100 m map crop does not)
        return bool(poly[:, 0].max() >= 0 and poly[:, 0].min() <= rows * p.bev_cell_m
                    and poly[:, 1].max() >= -half and poly[:, 1].min() <= half)

    layers = []
    polys = [
        [cache.drivable_polygon(i) for i in range(len(cache.drivable_offsets) - 1)],
        [cache.lane_polygon(i) for i in np.flatnonzero(cache.lane_on_route)],
        [_box_corners(b) for b in cache.agent_boxes[cache.agent_valid[:, 0], 0]] if cache.num_agents else [],
    ]
    min_cover = (0.5, 0.5, p.bev_agent_min_cover)
    for group, cover in zip(polys, min_cover):
        img = Image.new("L", (cols * SUPERSAMPLE, rows * SUPERSAMPLE), 0)
        draw = ImageDraw.Draw(img)
        for poly in group:
            if len(poly) >= 3 and np.all(np.isfinite(poly)) and inside(np.asarray(poly)):
                draw.polygon(to_px(np.asarray(poly)), fill=255)
        a = np.asarray(img, dtype=np.float32).reshape(rows, SUPERSAMPLE, cols, SUPERSAMPLE).mean(axis=(1, 3))
        layers.append(a >= 255 * cover - 1e-3)  # a in steps of 255/16: the tolerance keeps 8/16 >= half
    return np.stack(layers).astype(np.uint8)


class WithBEV:
    """A map-style feature dataset whose samples also carry "bev" (3, rows, cols) and "bev_valid" (a 0/1
    scalar: 0 where the scene has no metric cache, so the loss leaves it out). Rasters are drawn once."""

    def __init__(self, dataset: Sequence[dict[str, Any]], tokens: Sequence[str], caches: Sequence[MetricCache],
                 p: ModelParams) -> None:
        if len(tokens) != len(dataset):
            raise ValueError(f"{len(tokens)} tokens for {len(dataset)} samples")
        by_token = {c.token: c for c in caches}
        self.dataset = dataset
        empty = np.zeros((p.bev_channels, *p.bev_cells), dtype=np.uint8)
        self.rasters = [bev_raster(by_token[t], p)[: p.bev_channels] if t in by_token else empty for t in tokens]
        self.valid = [t in by_token for t in tokens]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = dict(self.dataset[i])
        sample["bev"] = torch.from_numpy(self.rasters[i].astype(np.float32))
        sample["bev_valid"] = torch.tensor(float(self.valid[i]))
        return sample
