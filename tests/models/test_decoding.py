"""Masked-diffusion schedule, decoding traces and GRPO log-probabilities, AR log-probabilities."""

from __future__ import annotations

import pytest
import torch

from drivefine_core.models import DriveFinePlanner, SpanVLAPlanner, cosine_commit_counts
from tests.models.conftest import tiny_params


@pytest.mark.parametrize("steps", [1, 2, 4, 12, 24])
def test_cosine_counts_exact(steps: int) -> None:
    counts = cosine_commit_counts(24, steps)
    assert len(counts) == steps and sum(counts) == 24 and min(counts) >= 1
    if 4 <= steps < 24:
        assert counts[0] < max(counts)  # cautious first, bolder later


@pytest.mark.parametrize("steps", [0, 25])
def test_cosine_counts_reject_bad_steps(steps: int) -> None:
    with pytest.raises(ValueError, match="steps"):
        cosine_commit_counts(24, steps)


@pytest.mark.parametrize("steps,remasking,temperature",
                         [(12, "confidence", 0.0), (4, "random", 1.0), (7, "confidence", 0.5)])
def test_decoding_commits_scheduled_counts(drivefine: DriveFinePlanner, batch: dict, steps: int, remasking: str,
                                           temperature: float) -> None:
    out = drivefine.drivefine.decode(batch, steps=steps, remasking=remasking, temperature=temperature,
                                   generator=torch.Generator().manual_seed(0), return_trace=True)
    expected = torch.tensor(cosine_commit_counts(24, steps))
    per_step = out.trace.commit_mask().sum(-1)  # (B, S)
    assert torch.equal(per_step, expected.expand_as(per_step))
    assert (out.tokens != drivefine.drivefine.mask_id).all()
    assert ((out.confidences > 0) & (out.confidences <= 1)).all()


def test_confidence_remasking_commits_most_confident_first(drivefine: DriveFinePlanner, batch: dict) -> None:
    out = drivefine.drivefine.decode(batch, steps=24, remasking="confidence", return_trace=True)
    # with one token per step, the committed token had the highest confidence among those still masked;
    # recompute step 0's confidences (the probability mass of each token's decoding window) and check that
    # the most confident token was committed
    dfm = drivefine.drivefine
    state0 = out.trace.state_before(0, dfm.mask_id)
    logits = dfm.backbone.forward_answer(state0, dfm.backbone.encode_prompt(batch, "generate"))
    probs = torch.softmax(logits, -1)
    best = dfm.backbone.pick(probs, probs.argmax(-1))[1].argmax(-1)
    first = (out.trace.step_of_token == 0).float().argmax(-1)
    assert torch.equal(best, first)


@pytest.fixture
def plain() -> tuple[DriveFinePlanner, SpanVLAPlanner]:
    """The planners with argmax decoding (window 0): a committed token's confidence is then its own
    probability, which the log-probability recomputations below must reproduce exactly."""
    torch.manual_seed(0)
    p = tiny_params(decode_window_bins=0)
    return DriveFinePlanner(p).eval(), SpanVLAPlanner(p).eval()


def test_trace_logprobs_match_decoding(plain: tuple[DriveFinePlanner, SpanVLAPlanner], batch: dict) -> None:
    dfm = plain[0].drivefine
    out = dfm.decode(batch, steps=6, return_trace=True)  # greedy: confidences are plain-softmax probabilities
    logp = dfm.trace_logprobs(batch, out.trace)
    mask = out.trace.commit_mask()
    assert logp.shape == (3, 6, 24)
    assert torch.all(logp[~mask] == 0)
    per_token = (logp * mask).sum(1)  # each token committed exactly once
    assert torch.allclose(per_token.exp(), out.confidences, atol=1e-5)
    per_token.sum().backward()
    assert dfm.backbone.experts["generate"][0].attn.qkv.weight.grad is not None


def test_trace_logprobs_sampled_temperature(plain: tuple[DriveFinePlanner, SpanVLAPlanner], batch: dict) -> None:
    dfm = plain[0].drivefine
    out = dfm.decode(batch, steps=4, temperature=0.7, generator=torch.Generator().manual_seed(3), return_trace=True)
    logp = dfm.trace_logprobs(batch, out.trace)
    assert torch.allclose((logp * out.trace.commit_mask()).sum(1).exp(), out.confidences, atol=1e-5)


def test_ar_logprobs_match_decoding(plain: tuple[DriveFinePlanner, SpanVLAPlanner], batch: dict) -> None:
    ar = plain[1].ar
    out = ar.decode(batch, temperature=0.0)
    logp = ar.logprobs(batch, out.tokens)
    assert torch.allclose(logp.exp(), out.confidences, atol=1e-5)


def test_refine_logprobs(plain: tuple[DriveFinePlanner, SpanVLAPlanner], batch: dict) -> None:
    dfm = plain[0].drivefine
    draft = dfm.decode(batch).tokens
    refined, conf = dfm.refine(batch, draft)
    assert torch.allclose(dfm.refine_logprobs(batch, draft, refined).exp(), conf, atol=1e-5)


def test_refinement_prompts_encoded_once_per_scene(plain: tuple[DriveFinePlanner, SpanVLAPlanner], batch: dict) -> None:
    """Drafts that name their scene (`rows`) read that scene's prompt, encoded once: the same log-probs and the
    same gradients on the refinement expert as a batch with every scene repeated per draft."""
    from drivefine_core.models import PlannerBatch

    dfm = plain[0].drivefine
    b = PlannerBatch.of(batch)
    rows = torch.tensor([0, 0, 2, 1, 2, 2])
    drafts = dfm.decode(b.map(lambda v: v[rows]), temperature=1.0, generator=torch.Generator().manual_seed(0)).tokens
    refined, _ = dfm.refine(b.map(lambda v: v[rows]), drafts, temperature=1.0, generator=torch.Generator().manual_seed(1))
    shared, _ = dfm.refine(b, drafts, temperature=1.0, generator=torch.Generator().manual_seed(1), rows=rows)
    assert torch.equal(refined, shared)
    grads = []
    for batch_, rows_ in ((b.map(lambda v: v[rows]), None), (b, rows)):
        dfm.zero_grad()
        lp = dfm.refine_logprobs(batch_, drafts, refined, 1.0, rows_)
        (lp * torch.arange(1.0, 7.0)[:, None]).sum().backward()
        grads.append((lp.detach(), [q.grad.clone() for q in dfm.refinement_parameters() if q.grad is not None]))
    (lp0, g0), (lp1, g1) = grads
    assert torch.allclose(lp0, lp1, atol=1e-5) and len(g0) == len(g1) > 0
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(g0, g1))
    assert not torch.allclose(lp0, dfm.refine_logprobs(b, drafts, refined, 1.0, torch.tensor([1, 0, 2, 1, 2, 0])), atol=1e-3)


def test_trace_logprobs_merged_steps(drivefine: DriveFinePlanner, batch: dict) -> None:
    dfm = drivefine.drivefine
    out = dfm.decode(batch, steps=7, return_trace=True)
    full = dfm.trace_logprobs(batch, out.trace)
    trace3 = out.trace.merged(3)  # floor(7 / 3) = 2 merged steps: states 0 and 3; step 6 joins the last
    merged = dfm.trace_logprobs(batch, trace3)
    mask = trace3.commit_mask()
    assert merged.shape == (3, 2, 24) and mask.shape == (3, 2, 24)
    assert torch.equal(mask.sum(1), torch.ones(3, 24, dtype=torch.long))  # each token counted once
    # the tokens committed at the first step of a merged group are scored under the same state as unmerged
    first = (out.trace.step_of_token == 0) | (out.trace.step_of_token == 3)
    m = merged.sum(1)[first]
    f = full.sum(1)[first]
    assert torch.allclose(m, f, atol=1e-5)
    # later tokens of a group are scored under an earlier (more masked) state: not the same numbers
    assert not torch.allclose(merged.sum(1)[~first], full.sum(1)[~first])


def test_keep_bias_makes_greedy_refinement_keep_the_draft(drivefine: DriveFinePlanner, batch: dict) -> None:
    """refine_keep_bias favours offset 0: a large bias returns the draft; sampled refinement (RL) ignores it."""
    dfm = drivefine.drivefine
    draft = dfm.decode(batch).tokens
    moved, _ = dfm.refine(batch, draft)
    assert not torch.equal(moved, draft)  # an untrained expert moves tokens, so the check below can fail
    dfm.p = dfm.p.model_copy(update={"refine_keep_bias": 50.0})
    kept, conf = dfm.refine(batch, draft)
    assert torch.equal(kept, draft) and bool((conf > 0.99).all())
    g = torch.Generator().manual_seed(0)
    sampled, _ = dfm.refine(batch, draft, temperature=1.0, generator=g)
    assert not torch.equal(sampled, draft)
