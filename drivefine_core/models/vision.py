"""A from-scratch ViT for the camera views: patch embedding, learned positions, a few blocks.

Every view goes through the same weights; a learned view embedding tells the views apart. The output is
projected to the backbone width so the patches can sit in the prompt like any other token.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drivefine_core.models.layers import Block
from drivefine_core.models.params import ModelParams


class VisionTower(nn.Module):
    def __init__(self, p: ModelParams) -> None:
        super().__init__()
        self.views = p.num_views
        self.patch = nn.Conv2d(3, p.vision_width, kernel_size=p.patch_size, stride=p.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, p.num_patches, p.vision_width))
        self.view = nn.Parameter(torch.zeros(1, p.num_views, 1, p.vision_width))
        self.blocks = nn.ModuleList(
            Block(p.vision_width, p.vision_heads, p.mlp_ratio, p.dropout) for _ in range(p.vision_depth)
        )
        self.norm = nn.LayerNorm(p.vision_width)
        self.out = nn.Linear(p.vision_width, p.width)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.view, std=0.02)

    def forward(self, image: Tensor) -> Tensor:
        """(B, V*3, H, W) in [0, 1] -> (B, V*num_patches, width)."""
        b, _, h, w = image.shape
        x = (image.reshape(b * self.views, 3, h, w) - 0.5) / 0.25  # rough centring; no dataset statistics here
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos  # (B*V, N, C)
        for blk in self.blocks:
            x, _ = blk(x)
        x = self.norm(x).reshape(b, self.views, -1, x.shape[-1]) + self.view
        return self.out(x.reshape(b, -1, x.shape[-1]))
