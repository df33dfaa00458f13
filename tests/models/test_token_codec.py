"""Trajectory tokens with a notion of near: value embeddings, soft labels, windowed decoding."""

from __future__ import annotations

import torch

from drivefine_core.features.tokenizer import HEADING_OFFSET, XY_BINS
from drivefine_core.models.token_codec import ValueEmbedding, sample_ids, soft_token_ce, window_decode

V = XY_BINS + 1800
LO, HI = torch.tensor([0, 0, HEADING_OFFSET]), torch.tensor([XY_BINS - 1, XY_BINS - 1, V - 1])


def test_value_embedding_is_smooth_in_the_bin() -> None:
    torch.manual_seed(0)
    emb = ValueEmbedding(64, V, 2, frequencies=8)
    e = emb(torch.tensor([2000, 2001, 3000, V, V + 1]))
    cos = torch.nn.functional.cosine_similarity
    assert cos(e[0], e[1], dim=0) > 0.99  # neighbouring bins look alike
    assert cos(e[0], e[2], dim=0) < cos(e[0], e[1], dim=0)  # a bin 50 m away less so
    assert torch.equal(e[3], emb.special.weight[0]) and torch.equal(e[4], emb.special.weight[1])


def test_soft_labels_penalise_by_distance() -> None:
    target = torch.tensor([[2000, 2000, HEADING_OFFSET + 900]])
    losses = []
    for off in (0, 5, 40):
        logits = torch.full((1, 3, V), -20.0)
        logits[0, 0, 2000 + off] = 20.0
        losses.append(float(soft_token_ce(logits, target, 10.0, LO, HI)[0, 0]))
    assert losses[0] < losses[1] < losses[2]  # one-hot CE would rate 5 and 40 bins off the same
    # sigma 0 is plain cross-entropy
    logits = torch.randn(1, 3, V)
    plain = torch.nn.functional.cross_entropy(logits[0], target[0], reduction="none")
    assert torch.allclose(soft_token_ce(logits, target, 0.0, LO, HI)[0], plain, atol=1e-5)


def test_soft_labels_stay_in_the_kind_range() -> None:
    """At the edge of the x/y range the Gaussian is cut there and renormalised: no mass on heading bins."""
    target = torch.tensor([[XY_BINS - 1, 0, HEADING_OFFSET]])
    logits = torch.zeros(1, 3, V)
    loss = soft_token_ce(logits, target, 10.0, LO, HI)
    assert torch.isfinite(loss).all()
    # a distribution uniform over the x/y bins scores log(4000) whatever the (valid) soft target
    assert torch.allclose(loss[0, :2], torch.log(torch.tensor(float(V))), atol=1e-4)


def test_window_decode_takes_the_local_mean() -> None:
    probs = torch.zeros(1, 3, V)
    probs[0, 0, [100, 101, 102]] = torch.tensor([0.3, 0.4, 0.3])  # symmetric: stays at 101
    probs[0, 1, [100, 101, 104]] = torch.tensor([0.2, 0.3, 0.5])  # mean 102.3 -> 102
    probs[0, 1, 3000] = 0.0
    probs[0, 2, HEADING_OFFSET + 5] = 1.0
    centre = probs.argmax(-1)
    ids, mass = window_decode(probs, centre, 5, LO, HI)
    assert ids.tolist() == [[101, 102, HEADING_OFFSET + 5]]
    assert torch.allclose(mass, torch.ones(1, 3))
    # window 0 is argmax decoding
    ids0, mass0 = window_decode(probs, centre, 0, LO, HI)
    assert torch.equal(ids0, centre) and torch.allclose(mass0, torch.tensor([[0.4, 0.5, 1.0]]))


def test_sample_ids_follows_the_distribution_and_never_draws_a_zero() -> None:
    probs = torch.zeros(3, V)
    probs[:, [10, 20, 30]] = torch.tensor([0.2, 0.5, 0.3]) * 7.0  # unnormalised, like a masked softmax
    rows = probs.repeat(4000, 1, 1)  # (4000, 3, V)
    g = torch.Generator().manual_seed(0)
    ids = sample_ids(rows, g)
    assert ids.shape == (4000, 3)
    assert set(ids.unique().tolist()) == {10, 20, 30}
    freq = torch.tensor([(ids == k).float().mean() for k in (10, 20, 30)])
    assert torch.allclose(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.02)
    again = sample_ids(rows, torch.Generator().manual_seed(0))
    assert torch.equal(ids, again)  # seeded: the same draws


def test_head_scores_each_slot_over_its_own_kind_only() -> None:
    """The LM head multiplies only a slot's kind's rows: its logits there are the full head's, -inf elsewhere,
    for any window of slots (the AR decoder asks one slot at a time) and with gradients to both kinds' rows."""
    from drivefine_core.features.tokenizer import position_is_heading
    from drivefine_core.models import ModelParams
    from drivefine_core.models.backbone import Backbone

    torch.manual_seed(0)
    bb = Backbone(ModelParams(width=32, depth=2, heads=2, image_height=32, image_width=32, patch_size=16,
                              vision_width=16, vision_depth=1, vision_heads=2), ("generate",), 1, causal=False)
    heading = torch.from_numpy(position_is_heading(24))
    for start, length in ((0, 24), (2, 1), (4, 1), (5, 7)):
        h = torch.randn(3, length, 32, requires_grad=True)
        out = bb.logits(h, "generate", start)
        full = torch.nn.functional.linear(bb.norms["generate"](h), bb.head.weight)
        own = torch.zeros(length, V, dtype=torch.bool)
        for i, is_h in enumerate(heading[start : start + length].tolist()):
            own[i, XY_BINS:], own[i, :XY_BINS] = is_h, not is_h
        assert torch.equal(torch.isinf(out), ~own.expand_as(out))
        assert torch.allclose(out[own.expand_as(out)], full[own.expand_as(out)], atol=1e-6)
    loss = bb.logits(torch.randn(2, 24, 32), "generate").clamp_min(-1e4).sum()
    loss.backward()
    assert bb.head.weight.grad is not None and bool((bb.head.weight.grad[:XY_BINS] != 0).any())
    assert bool((bb.head.weight.grad[XY_BINS:] != 0).any())
