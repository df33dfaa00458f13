"""The auxiliary BEV loss: cross-entropy per cell, plus the per-channel Dice term that keeps a rare channel
(the vehicles) from being learned as all zeros."""

from __future__ import annotations

import torch

from drivefine_core.models.bev import bev_loss


def _target() -> torch.Tensor:
    t = torch.zeros(2, 3, 32, 32)
    t[:, 0, :, 8:24] = 1  # a road: half the cells
    t[:, 2, 10, 15] = 1  # one vehicle cell of 1,024
    return t


def test_dice_charges_a_missed_rare_channel_what_cross_entropy_does_not() -> None:
    t = _target()
    perfect = (t * 2 - 1) * 20
    no_vehicle = perfect.clone()
    no_vehicle[:, 2] = -20
    # cross-entropy alone barely notices the missed vehicle (one cell in 3,072 of the sample)
    assert bev_loss(no_vehicle, t) - bev_loss(perfect, t) < 0.01
    # the Dice term: a whole channel missed costs about 1 / channels; a perfect prediction about 0
    gap = bev_loss(no_vehicle, t, dice_weight=1.0) - bev_loss(perfect, t, dice_weight=1.0)
    assert 0.15 < float(gap) < 0.34
    assert float(bev_loss(perfect, t, dice_weight=1.0)) < 1e-3  # empty channels predicted empty cost nothing


def test_dice_pulls_harder_on_a_rare_channel_than_on_a_common_one() -> None:
    """Cross-entropy pulls every missed positive cell alike; Dice's pull grows as the channel's mass shrinks."""
    t = _target()
    logits = torch.full_like(t, -4.0, requires_grad=True)
    pulls = {}
    for w in (0.0, 1.0):
        logits.grad = None
        bev_loss(logits, t, dice_weight=w).backward()
        g = -logits.grad[0]
        pulls[w] = float(g[2, 10, 15]) / float(g[0, 0, 10])  # the vehicle cell over a road cell
    assert abs(pulls[0.0] - 1) < 1e-5
    assert pulls[1.0] > 2


def test_weight_leaves_out_samples_without_a_target() -> None:
    t = _target()
    logits = torch.zeros_like(t)
    logits[1] = 5.0  # a bad prediction on the sample without a target
    only_first = bev_loss(logits[:1], t[:1], dice_weight=1.0)
    assert torch.allclose(bev_loss(logits, t, torch.tensor([1.0, 0.0]), dice_weight=1.0), only_first)
