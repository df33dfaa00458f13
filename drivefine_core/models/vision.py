"""A from-scratch ViT for the camera views: patch embedding, learned positions, a few blocks.

The patch embedding is either the plain ViT projection of 16x16 patches or a stem of strided 3x3
convolutions down to the same patch grid (early convolutions: a from-scratch ViT on a few thousand
images learns edges and lane markings far sooner through them).

Every view goes through the same weights; a learned view embedding tells the views apart. The output is
projected to the backbone width so the patches can sit in the prompt like any other token.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from drivefine_core.models.layers import Block
from drivefine_core.models.params import ModelParams


class VisionTower(nn.Module):
    def __init__(self, p: ModelParams) -> None:
        super().__init__()
        self.views = p.num_views
        self.patch = conv_stem(p.vision_width, p.patch_size) if p.vision_stem == "conv" else \
            nn.Conv2d(3, p.vision_width, kernel_size=p.patch_size, stride=p.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, p.num_patches, p.vision_width))
        self.view = nn.Parameter(torch.zeros(1, p.num_views, 1, p.vision_width))
        self.blocks = nn.ModuleList(
            Block(p.vision_width, p.vision_heads, p.mlp_ratio, p.dropout) for _ in range(p.vision_depth)
        )
        self.norm = nn.LayerNorm(p.vision_width)
        self.out = nn.Linear(p.vision_width, p.width)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.view, std=0.02)

    def reset_stem(self) -> None:
        """He init for the conv stem (a GPT-style 0.02 init would shrink activations through its layers).
        Called after a model's blanket init_weights."""
        for m in self.patch.modules() if isinstance(self.patch, nn.Sequential) else ():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, image: Tensor) -> Tensor:
        """(B, V*3, H, W) in [0, 1] -> (B, V*num_patches, width)."""
        return self.out(self.features(image))

    def features(self, image: Tensor) -> Tensor:
        """(B, V*3, H, W) -> (B, V*num_patches, vision_width): the tokens before the projection to the
        backbone width (what the BEV head reads)."""
        b, _, h, w = image.shape
        x = (image.reshape(b * self.views, 3, h, w) - 0.5) / 0.25  # rough centring; no dataset statistics here
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos  # (B*V, N, C)
        for blk in self.blocks:
            x, _ = blk(x)
        x = self.norm(x).reshape(b, self.views, -1, x.shape[-1]) + self.view
        return x.reshape(b, -1, x.shape[-1])


def conv_stem(width: int, patch: int) -> nn.Sequential:
    """log2(patch) stride-2 3x3 convolutions (channels growing to `width`), GELU between: the same
    (H / patch, W / patch) grid as the patch projection."""
    n = int(round(math.log2(patch)))
    if 2**n != patch:
        raise ValueError(f"the conv stem needs a power-of-two patch_size, got {patch}")
    chans = [3] + [max(width >> (n - 1 - i), 8) for i in range(n)]
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.GELU()]
    return nn.Sequential(*layers[:-1])
