"""Prefix-DLM / prefix-LM masks and the prompt KV cache."""

from __future__ import annotations

import torch

from drivefine_core.models import DriveFinePlanner, SpanVLAPlanner
from drivefine_core.models.layers import prefix_mask


def test_prefix_mask_layout() -> None:
    m = prefix_mask(3, 2, causal_answer=False, device=torch.device("cpu"))
    assert not m[:3, 3:].any() and m[:3, :3].all() and m[3:].all()
    c = prefix_mask(3, 2, causal_answer=True, device=torch.device("cpu"))
    assert c[3, 3] and not c[3, 4] and c[4, :].all()


def test_prompt_cannot_see_answer(drivefine: DriveFinePlanner, batch: dict) -> None:
    bb = drivefine.drivefine.backbone
    a = batch["target_tokens"]
    b = a.clone()
    b[:, ::3] = (b[:, ::3] + 37) % 4000
    for task in ("generate", "refine"):
        hp_a, logits_a = bb.forward_full(batch, a, task)
        hp_b, logits_b = bb.forward_full(batch, b, task)
        assert torch.equal(hp_a, hp_b), task
        assert not torch.allclose(logits_a, logits_b), "answer perturbation must change the answer rows"


def test_ar_answer_is_causal(spanvla: SpanVLAPlanner, batch: dict) -> None:
    bb = spanvla.ar.backbone
    a = batch["target_tokens"]
    b = a.clone()
    b[:, 10] = (b[:, 10] + 50) % 4000
    hp_a, la = bb.forward_full(batch, a, "act")
    hp_b, lb = bb.forward_full(batch, b, "act")
    assert torch.equal(hp_a, hp_b)
    assert torch.allclose(la[:, :10], lb[:, :10], atol=1e-6)
    assert not torch.allclose(la[:, 10:], lb[:, 10:])


def test_cached_answer_pass_matches_full_pass(drivefine: DriveFinePlanner, spanvla: SpanVLAPlanner, batch: dict) -> None:
    for model, task in ((drivefine.drivefine, "generate"), (drivefine.drivefine, "refine"),
                        (spanvla.ar, "act")):
        bb = model.backbone
        tokens = batch["target_tokens"]
        hp, full = bb.forward_full(batch, tokens, task)
        cache = bb.encode_prompt(batch, task)
        assert torch.allclose(cache.hidden, hp, atol=1e-5)
        assert torch.allclose(bb.forward_answer(tokens, cache), full, atol=1e-5), task


def test_cached_and_uncached_decoding_identical(drivefine: DriveFinePlanner, spanvla: SpanVLAPlanner,
                                                batch: dict) -> None:
    dfm = drivefine.drivefine
    for temperature, remasking in ((0.0, "confidence"), (1.0, "confidence"), (0.7, "random")):
        outs = [dfm.decode(batch, temperature=temperature, remasking=remasking, use_cache=c,
                           generator=torch.Generator().manual_seed(5), return_trace=True) for c in (True, False)]
        assert torch.equal(outs[0].tokens, outs[1].tokens)
        assert torch.equal(outs[0].trace.step_of_token, outs[1].trace.step_of_token)
        assert torch.allclose(outs[0].confidences, outs[1].confidences, atol=1e-5)
    ar = [spanvla.ar.decode(batch, temperature=0.8, use_cache=c, generator=torch.Generator().manual_seed(1))
          for c in (True, False)]
    assert torch.equal(ar[0].tokens, ar[1].tokens)
    assert torch.allclose(ar[0].confidences, ar[1].confidences, atol=1e-5)
