"""DriveFine: a masked-diffusion planner with a block-MoE refinement expert.

Generation expert: the answer's 24 trajectory tokens are masked with probability t ~ U(0, 1) (at least one
masked) and predicted with cross-entropy on the masked ones (LLaDA; optional 1/t weight, optional LaViDa
complementary masking). Decoding starts fully masked and, over S steps, commits the most confident (or
random) predictions with counts from a cosine schedule; the prompt's KV cache is reused by every step.

Refinement expert: the last n blocks, warm-started from the generation expert's, re-predict every token of a
full draft in one pass. The refinement loss sees the shared trunk detached, so only its own blocks learn;
the generation loss never reaches them because the generation path never runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drivefine_core.features.tokenizer import HEADING_BINS, HEADING_OFFSET, XY_BINS, position_is_heading
from drivefine_core.models.backbone import Backbone, PromptCache
from drivefine_core.models.batch import Batch
from drivefine_core.models.params import NUM_ANSWER_TOKENS, ModelParams
from drivefine_core.models.schedules import cosine_commit_counts

GENERATE, REFINE = "generate", "refine"


@dataclass
class DecodeTrace:
    """What a decoding committed and when: enough to recompute its log-probabilities later (GRPO)."""

    tokens: Tensor  # (B, 24) final tokens
    step_of_token: Tensor  # (B, 24) long: the step (0..S-1) at which each token was committed
    steps: int
    temperature: float

    def state_before(self, step: int, mask_id: int) -> Tensor:
        """(B, 24) decoder input at the start of `step`: tokens committed earlier, [MASK] elsewhere."""
        return torch.where(self.step_of_token < step, self.tokens, torch.full_like(self.tokens, mask_id))

    def commit_mask(self, merge: int = 1) -> Tensor:
        """(B, S', 24) bool: True where the token was committed between kept state j and j+1.

        merge = tau merges every tau neighbouring steps (DriveFine's GRPO): S' = ceil(S / tau) kept states
        j*tau, and a token counts for the kept state that precedes its commit."""
        kept = torch.arange(0, self.steps, merge, device=self.tokens.device) // merge
        return (self.step_of_token // merge)[:, None, :] == kept[None, :, None]


@dataclass
class DecodeOutput:
    tokens: Tensor  # (B, 24)
    confidences: Tensor  # (B, 24): probability of each token when it was committed
    trace: DecodeTrace | None = None


def effective_temperature(t: float) -> float:
    return t if t > 0 else 1.0  # greedy decoding scores log-probs under the plain softmax


class DriveFineModel(nn.Module):
    def __init__(self, p: ModelParams) -> None:
        super().__init__()
        self.p = p
        self.backbone = Backbone(p, (GENERATE, REFINE), p.n_refine_blocks, causal=False, detached_experts=(REFINE,))
        self.mask_id = self.backbone.mask_id

    # -- generation expert: training ---------------------------------------------------------------------
    def generation_loss(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        target = batch["target_tokens"]
        b, n = target.shape
        dev = target.device
        t = torch.rand(b, 1, device=dev, generator=generator)
        masked = torch.rand(b, n, device=dev, generator=generator) < t
        # at least one masked token per sample
        forced = torch.randint(0, n, (b,), device=dev, generator=generator)
        masked = masked | (F.one_hot(forced, n).bool() & ~masked.any(1, keepdim=True))
        cache = self.backbone.encode_prompt(batch, GENERATE)
        if self.p.complementary_masking:  # LaViDa: every sample twice, with the mask and its complement
            masked, t = torch.cat([masked, ~masked]), torch.cat([t, 1 - t])
            target, cache = torch.cat([target, target]), _stack_cache(cache)
        inputs = torch.where(masked, torch.full_like(target, self.mask_id), target)
        logits = self.backbone.forward_answer(inputs, cache)
        ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view_as(target)
        ce = ce * masked
        if self.p.inverse_t_weighting:  # LLaDA's unbiased estimator: sum over masked of CE / t, per token
            return (ce / t.clamp_min(1e-3)).sum() / target.numel()
        return ce.sum() / masked.sum().clamp_min(1)

    # -- generation expert: decoding ---------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self,
        batch: Batch,
        steps: int | None = None,
        temperature: float | None = None,
        remasking: str | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        return_trace: bool = False,
    ) -> DecodeOutput:
        steps = self.p.mdm_steps if steps is None else steps
        temperature = self.p.temperature if temperature is None else temperature
        remasking = self.p.remasking if remasking is None else remasking
        if remasking not in ("confidence", "random"):
            raise ValueError(f"remasking must be 'confidence' or 'random', got '{remasking}'")
        counts = cosine_commit_counts(NUM_ANSWER_TOKENS, steps)
        image = batch["image"]
        b, dev = image.shape[0], image.device
        tokens = torch.full((b, NUM_ANSWER_TOKENS), self.mask_id, dtype=torch.long, device=dev)
        conf = torch.zeros(b, NUM_ANSWER_TOKENS, device=dev)
        step_of = torch.full((b, NUM_ANSWER_TOKENS), steps, dtype=torch.long, device=dev)
        cache = self.backbone.encode_prompt(batch, GENERATE) if use_cache else None
        for step, k in enumerate(counts):
            if cache is not None:
                logits = self.backbone.forward_answer(tokens, cache)
            else:
                logits = self.backbone.forward_full(batch, tokens, GENERATE)[1]
            probs = torch.softmax(logits.float() / effective_temperature(temperature), dim=-1)
            if temperature > 0:
                pred = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(b, -1)
            else:
                pred = probs.argmax(-1)
            pred_conf = probs.gather(-1, pred[..., None])[..., 0]
            still_masked = tokens == self.mask_id
            if remasking == "confidence":
                score = pred_conf.clone()
            else:
                score = torch.rand(b, NUM_ANSWER_TOKENS, device=dev, generator=generator)
            score = score.masked_fill(~still_masked, float("-inf"))
            chosen = torch.zeros_like(still_masked).scatter_(1, score.topk(k, dim=1).indices, True)
            tokens = torch.where(chosen, pred, tokens)
            conf = torch.where(chosen, pred_conf, conf)
            step_of = torch.where(chosen, torch.full_like(step_of, step), step_of)
        trace = DecodeTrace(tokens, step_of, steps, temperature) if return_trace else None
        return DecodeOutput(tokens, conf, trace)

    def trace_logprobs(self, batch: Batch, trace: DecodeTrace, merge: int = 1) -> Tensor:
        """(B, S, 24) log pi(token | state_j) of the tokens committed between state j and j+1 under the current
        weights (0 elsewhere; `trace.commit_mask(merge)` says where). Differentiable; all S states run as one
        batch over one shared prompt pass. merge = tau keeps only states 0, tau, 2*tau, ... (S = ceil(steps/tau))."""
        if merge < 1:
            raise ValueError(f"merge must be >= 1, got {merge}")
        b = trace.tokens.shape[0]
        kept = list(range(0, trace.steps, merge))
        s = len(kept)
        states = torch.stack([trace.state_before(j, self.mask_id) for j in kept], dim=1)  # (B, S, 24)
        cache = self.backbone.encode_prompt(batch, GENERATE).repeat(s)
        logits = self.backbone.forward_answer(states.flatten(0, 1), cache).view(b, s, NUM_ANSWER_TOKENS, -1)
        logp = torch.log_softmax(logits.float() / effective_temperature(trace.temperature), dim=-1)
        target = trace.tokens[:, None, :, None].expand(b, s, NUM_ANSWER_TOKENS, 1)
        picked = logp.gather(-1, target)[..., 0]
        return torch.where(trace.commit_mask(merge), picked, torch.zeros_like(picked))

    # -- refinement expert -------------------------------------------------------------------------------
    def refine_logits(self, batch: Batch, draft: Tensor) -> Tensor:
        """(B, 24) full draft -> (B, 24, vocab) logits of the refinement expert, one pass."""
        cache = self.backbone.encode_prompt(batch, REFINE)
        return self.backbone.forward_answer(draft, cache)

    def refinement_loss(self, batch: Batch, draft: Tensor) -> Tensor:
        """Cross-entropy on every token of the draft's refinement towards the target."""
        logits = self.refine_logits(batch, draft)
        return F.cross_entropy(logits.flatten(0, 1), batch["target_tokens"].flatten())

    @torch.no_grad()
    def refine(
        self, batch: Batch, draft: Tensor, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """One refinement pass -> (tokens, probabilities of those tokens)."""
        probs = torch.softmax(self.refine_logits(batch, draft).float() / effective_temperature(temperature), -1)
        if temperature > 0:
            tokens = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(draft.shape)
        else:
            tokens = probs.argmax(-1)
        return tokens, probs.gather(-1, tokens[..., None])[..., 0]

    def refine_logprobs(self, batch: Batch, draft: Tensor, refined: Tensor, temperature: float = 0.0) -> Tensor:
        """(B, 24) differentiable log pi_refine(refined | draft), for refinement RL."""
        logits = self.refine_logits(batch, draft).float() / effective_temperature(temperature)
        return torch.log_softmax(logits, -1).gather(-1, refined[..., None])[..., 0]


def _stack_cache(cache: PromptCache) -> PromptCache:
    """The prompt cache for [batch ; batch] (complementary masking)."""
    kv = [(torch.cat([k, k]), torch.cat([v, v])) for k, v in cache.kv]
    return PromptCache(kv, torch.cat([cache.hidden, cache.hidden]), cache.task)


def perturb_tokens(tokens: Tensor, sigma_bins: float, generator: torch.Generator | None = None) -> Tensor:
    """A synthetic draft: every token moved by round(N(0, sigma)) bins, kept inside its own range
    (x/y tokens stay x/y bins, heading tokens stay heading bins)."""
    noise = torch.randn(tokens.shape, device=tokens.device, generator=generator) * sigma_bins
    moved = tokens + noise.round().long()
    is_heading = torch.from_numpy(position_is_heading(tokens.shape[-1])).to(tokens.device)
    lo = torch.where(is_heading, HEADING_OFFSET, 0)
    hi = torch.where(is_heading, HEADING_OFFSET + HEADING_BINS - 1, XY_BINS - 1)
    return torch.maximum(torch.minimum(moved, hi), lo)
