"""Transformer pieces shared by the vision tower, the backbones and the flow expert.

Every attention call goes through scaled_dot_product_attention with an explicit boolean mask (True = may
attend) or None when every query may see every key. A block can be given the keys/values of a prefix
(the prompt's KV cache) that its queries attend to in front of their own keys/values; it returns its own
keys/values so the caller can cache them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KV = tuple[Tensor, Tensor]  # (B, heads, T, head_dim) each


def stack_kv(kv: list[KV]) -> Tensor:
    """Per-layer keys/values -> one (B, layers, 2, heads, T, head_dim) tensor (a sample's are contiguous)."""
    return torch.stack([torch.stack(pair, 1) for pair in kv], 1)


def unstack_kv(stacked: Tensor) -> list[KV]:
    """The inverse of stack_kv."""
    return [(stacked[:, i, 0], stacked[:, i, 1]) for i in range(stacked.shape[1])]


def split_heads(x: Tensor, heads: int) -> Tensor:
    b, t, c = x.shape
    return x.view(b, t, heads, c // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float = 0.0) -> Tensor:
    """SDPA over (B, H, Tq, D) x (B, H, Tk, D); mask (Tq, Tk) or broadcastable, True = allowed."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None, past: KV | None = None) -> tuple[Tensor, KV]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        y = attend(q, keys, values, mask, self.dropout if self.training else 0.0)
        return self.proj(merge_heads(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, width: int, ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(round(width * ratio))
        self.fc = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.out(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio, dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, past: KV | None = None) -> tuple[Tensor, KV]:
        a, kv = self.attn(self.norm1(x), mask, past)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return x, kv


def prefix_mask(n_prompt: int, n_answer: int, causal_answer: bool, device: torch.device) -> Tensor:
    """(P+A, P+A) boolean mask: prompt rows see the prompt only; answer rows see the prompt and the answer
    (all of it for the bidirectional prefix-DLM, only earlier positions for the autoregressive variant)."""
    n = n_prompt + n_answer
    mask = torch.zeros(n, n, dtype=torch.bool, device=device)
    mask[:n_prompt, :n_prompt] = True
    mask[n_prompt:, :n_prompt] = True
    if causal_answer:
        mask[n_prompt:, n_prompt:] = torch.ones(n_answer, n_answer, dtype=torch.bool, device=device).tril()
    else:
        mask[n_prompt:, n_prompt:] = True
    return mask


def answer_mask(n_past: int, n_answer: int, causal_answer: bool, device: torch.device) -> Tensor | None:
    """Mask of answer queries over [cached keys ; own keys]; None where everything is visible."""
    if not causal_answer or n_answer == 1:
        return None
    own = torch.ones(n_answer, n_answer, dtype=torch.bool, device=device).tril()
    return torch.cat([torch.ones(n_answer, n_past, dtype=torch.bool, device=device), own], dim=1)


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """(B,) scalars in [0, 1] -> (B, dim) sin/cos features (scaled by 1000 so [0, 1] spans many periods)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def init_weights(module: nn.Module) -> None:
    """GPT-style init: small normal weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
