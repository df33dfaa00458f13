"""Auxiliary bird's-eye-view head: what the camera shows, as a top-down raster (TransFuser-style).

A planner trained only on trajectories from a few thousand scenes learns to extrapolate the ego status and
ignores the camera. Asking the vision tower to also predict the drivable area, the route and the vehicles
around the ego (from the metric cache, which holds them for every scene) makes its tokens carry the road
geometry the trajectory needs. The head is used in training only; planning never runs it.

Queries: one learned query per 2x2 block of BEV cells, a cross-attention over the vision tokens, an MLP,
then a linear map to the 2x2 cells' logits of every channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drivefine_core.models.layers import MLP, attend, merge_heads, split_heads
from drivefine_core.models.params import ModelParams


class BEVHead(nn.Module):
    def __init__(self, p: ModelParams) -> None:
        super().__init__()
        w, self.heads = p.vision_width, p.vision_heads
        self.channels = p.bev_channels
        self.grid = (p.bev_cells[0] // 2, p.bev_cells[1] // 2)
        self.queries = nn.Parameter(torch.randn(1, self.grid[0] * self.grid[1], w) * 0.02)
        self.norm_q, self.norm_kv = nn.LayerNorm(w), nn.LayerNorm(w)
        self.q, self.kv = nn.Linear(w, w), nn.Linear(w, 2 * w)
        self.proj = nn.Linear(w, w)
        self.norm_mlp = nn.LayerNorm(w)
        self.mlp = MLP(w, 2.0)
        self.out = nn.Linear(w, 4 * p.bev_channels)

    def forward(self, vision_tokens: Tensor) -> Tensor:
        """(B, N, vision_width) -> (B, C, forward cells, lateral cells) logits."""
        b = vision_tokens.shape[0]
        x = self.queries.expand(b, -1, -1)
        k, v = self.kv(self.norm_kv(vision_tokens)).chunk(2, -1)
        q = self.q(self.norm_q(x))
        x = x + self.proj(merge_heads(attend(*(split_heads(t, self.heads) for t in (q, k, v)), None)))
        x = x + self.mlp(self.norm_mlp(x))
        gh, gw = self.grid
        out = self.out(x).view(b, gh, gw, self.channels, 2, 2)  # (B, gh, gw, C, 2, 2)
        return out.permute(0, 3, 1, 4, 2, 5).reshape(b, self.channels, 2 * gh, 2 * gw)


def bev_loss(logits: Tensor, target: Tensor, weight: Tensor | None = None, dice_weight: float = 0.0) -> Tensor:
    """Binary cross-entropy per cell, averaged, plus `dice_weight` x the soft Dice loss of each channel (mean
    over channels): averaged over cells, BCE alone lets a rare channel (vehicles: 0.45% of the cells of the
    ladder's scenes) be learned as all zeros, while Dice weighs every channel's overlap alike. `weight` (B,)
    leaves out samples without a BEV target."""
    target = target.float()
    per_sample = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(1)
    if dice_weight > 0:
        prob = torch.sigmoid(logits.float()).flatten(2)
        t = target.flatten(2)
        dice = 1 - (2 * (prob * t).sum(-1) + 1) / (prob.sum(-1) + t.sum(-1) + 1)  # (B, C), +1: empty channels
        per_sample = per_sample + dice_weight * dice.mean(1)
    if weight is None:
        return per_sample.mean()
    return (per_sample * weight).sum() / weight.sum().clamp_min(1.0)
