"""DriveFine: a masked-diffusion planner with a block-MoE refinement expert.

Generation expert: the answer's 24 trajectory tokens are masked with probability t ~ U(0, 1) (at least one
masked) and predicted with cross-entropy on the masked ones (LLaDA; optional 1/t weight, optional LaViDa
complementary masking). Decoding starts fully masked and, over S steps, commits the most confident (or
random) predictions with counts from a cosine schedule; the prompt's KV cache is reused by every step.

Refinement expert: the last n blocks, warm-started from the generation expert's once that is trained
(training/sft.py copies them), re-predict every token of a full draft in one pass. With
refine_offset_bins = R > 0 its own head predicts each token's offset from the draft within +-R bins, so
"keep the draft" is one logit and the expert only has to learn where the generator's drafts go wrong;
R = 0 re-predicts whole tokens through the shared LM head. The refinement loss sees the shared trunk
detached, so only its own blocks (and head) learn; the generation loss never reaches them because the
generation path never runs them.

Tokens are value-embedded, trained with Gaussian soft labels and decoded within a window (token_codec.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drivefine_core.models.backbone import Backbone, PromptCache
from drivefine_core.models.batch import Batch
from drivefine_core.models.params import NUM_ANSWER_TOKENS, ModelParams
from drivefine_core.models.schedules import cosine_commit_counts
from drivefine_core.models.token_codec import kind_bounds, sample_ids, soft_token_ce, window_decode

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

    def commit_mask(self) -> Tensor:
        """(B, S, 24) bool: True where the token was committed at step j (each token exactly once)."""
        steps = torch.arange(self.steps, device=self.tokens.device)
        return self.step_of_token[:, None, :] == steps[None, :, None]

    def merged(self, tau: int) -> "DecodeTrace":
        """The one step-merge rule of DriveFine's GRPO: floor(S / tau) merged steps of tau neighbouring steps
        each, the remainder joining the last; a token committed anywhere in merged step j is scored under the
        state at the start of merged step j."""
        if tau < 1:
            raise ValueError(f"merge tau must be >= 1, got {tau}")
        kept = max(1, self.steps // tau)
        return DecodeTrace(self.tokens, torch.clamp(self.step_of_token // tau, max=kept - 1), kept, self.temperature)


@dataclass
class DecodeOutput:
    tokens: Tensor  # (B, 24)
    confidences: Tensor  # (B, 24): probability mass of each token's decoding window when it was committed
    trace: DecodeTrace | None = None


def effective_temperature(t: float) -> float:
    return t if t > 0 else 1.0  # greedy decoding scores log-probs under the plain softmax


class DriveFineModel(nn.Module):
    def __init__(self, p: ModelParams) -> None:
        super().__init__()
        self.p = p
        self.backbone = Backbone(p, (GENERATE, REFINE), p.n_refine_blocks, causal=False, detached_experts=(REFINE,))
        self.mask_id = self.backbone.mask_id
        r = p.refine_offset_bins
        self.refine_head = nn.Linear(p.width, 2 * r + 1) if r > 0 else None
        if self.refine_head is not None:  # starts near "keep the draft": a Gaussian prior on the offset
            nn.init.normal_(self.refine_head.weight, std=0.02)
            with torch.no_grad():
                self.refine_head.bias.copy_(-((torch.arange(2 * r + 1) - r).float() / max(p.label_sigma_bins, 1.0)) ** 2 / 2)

    # -- generation expert: training ---------------------------------------------------------------------
    def generation_loss(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        return self.generation_losses(batch, generator)["mdm"]

    def generation_losses(self, batch: Batch, generator: torch.Generator | None = None,
                          cache: PromptCache | None = None) -> dict[str, Tensor]:
        """{"mdm": masked-token loss} (+ "bev": the auxiliary BEV loss when the batch has a "bev" target).
        `cache`: the batch's generation prompt pass when the caller already ran it."""
        target = batch["target_tokens"]
        b, n = target.shape
        dev = target.device
        t = torch.rand(b, 1, device=dev, generator=generator)
        masked = torch.rand(b, n, device=dev, generator=generator) < t
        # at least one masked token per sample
        forced = torch.randint(0, n, (b,), device=dev, generator=generator)
        masked = masked | (F.one_hot(forced, n).bool() & ~masked.any(1, keepdim=True))
        cache = cache if cache is not None else self.backbone.encode_prompt(batch, GENERATE)
        out: dict[str, Tensor] = {}
        if "bev" in batch:
            out["bev"] = self.backbone.bev_loss(cache, batch)
        if self.p.complementary_masking:  # LaViDa: every sample twice, with the mask and its complement
            masked, t = torch.cat([masked, ~masked]), torch.cat([t, 1 - t])
            target, cache = torch.cat([target, target]), _stack_cache(cache)
        inputs = torch.where(masked, torch.full_like(target, self.mask_id), target)
        logits = self.backbone.forward_answer(inputs, cache)
        ce = self.backbone.token_loss(logits, target) * masked
        if self.p.inverse_t_weighting:  # LLaDA's unbiased estimator: sum over masked of CE / t, per token
            out["mdm"] = (ce / t.clamp_min(1e-3)).sum() / target.numel()
        else:
            out["mdm"] = ce.sum() / masked.sum().clamp_min(1)
        return out

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
        prompt: PromptCache | None = None,
    ) -> DecodeOutput:
        """`prompt`: the batch's generation prompt pass when the caller already has it (read, not trained)."""
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
        cache = prompt
        if cache is None and use_cache:
            cache = self.backbone.encode_prompt(batch, GENERATE)
        for step, k in enumerate(counts):
            if cache is not None:
                logits = self.backbone.forward_answer(tokens, cache)
            else:
                logits = self.backbone.forward_full(batch, tokens, GENERATE)[1]
            probs = torch.softmax(logits.float() / effective_temperature(temperature), dim=-1)
            if temperature > 0:
                centre = sample_ids(probs, generator)
            else:
                centre = probs.argmax(-1)
            pred, pred_conf = self.backbone.pick(probs, centre)
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

    def trace_logprobs(self, batch: Batch, trace: DecodeTrace) -> Tensor:
        """(B, S, 24) log pi(token | state_j) of the tokens committed at step j under the current weights (0
        elsewhere; `trace.commit_mask()` says where). Differentiable; all S states run as one batch over one
        shared prompt pass. For merged steps pass `trace.merged(tau)`."""
        b = trace.tokens.shape[0]
        s = trace.steps
        states = torch.stack([trace.state_before(j, self.mask_id) for j in range(s)], dim=1)  # (B, S, 24)
        cache = self.backbone.encode_prompt(batch, GENERATE).repeat(s)
        logits = self.backbone.forward_answer(states.flatten(0, 1), cache).view(b, s, NUM_ANSWER_TOKENS, -1)
        logp = torch.log_softmax(logits.float() / effective_temperature(trace.temperature), dim=-1)
        target = trace.tokens[:, None, :, None].expand(b, s, NUM_ANSWER_TOKENS, 1)
        picked = logp.gather(-1, target)[..., 0]
        return torch.where(trace.commit_mask(), picked, torch.zeros_like(picked))

    # -- refinement expert -------------------------------------------------------------------------------
    def refinement_parameters(self) -> list[nn.Parameter]:
        """What the refinement loss and refinement RL train: the refinement expert's blocks, its norms and head
        (it reads the shared trunk detached)."""
        head = list(self.refine_head.parameters()) if self.refine_head is not None else []
        return [*self.backbone.experts[REFINE].parameters(), *self.backbone.norms[REFINE].parameters(), *head]

    def refine_logits(self, batch: Batch, draft: Tensor, rows: Tensor | None = None) -> Tensor:
        """(B, 24) full draft -> (B, 24, K) logits of the refinement expert, one pass: over offsets
        -R..R from the draft (K = 2R + 1) or, with R = 0, over the vocabulary. `rows`: (B,) the scene of `batch`
        each draft belongs to (its prompt is encoded once per scene); None: draft i is scene i's."""
        cache = self.backbone.encode_prompt(batch, REFINE)
        if rows is not None:
            cache = cache.select(rows)
        if self.refine_head is None:
            return self.backbone.forward_answer(draft, cache)
        h = self.backbone.norms[REFINE](self.backbone.answer_hidden(draft, cache))
        return self.refine_head(h)

    def _refine_index(self, draft: Tensor, tokens: Tensor) -> Tensor:
        """Refined tokens -> indices into refine_logits' last dimension (offsets clipped to +-R)."""
        r = self.p.refine_offset_bins
        return tokens if self.refine_head is None else (tokens - draft).clamp(-r, r) + r

    def _refine_tokens(self, draft: Tensor, index: Tensor) -> Tensor:
        if self.refine_head is None:
            return index
        bb = self.backbone
        return torch.maximum(torch.minimum(draft + index - self.p.refine_offset_bins, bb.tok_hi), bb.tok_lo)

    def _refine_bounds(self) -> tuple[Tensor, Tensor]:
        bb = self.backbone
        if self.refine_head is None:
            return bb.tok_lo, bb.tok_hi
        r = self.p.refine_offset_bins
        return torch.zeros_like(bb.tok_lo), torch.full_like(bb.tok_hi, 2 * r)

    def refinement_loss(self, batch: Batch, draft: Tensor) -> Tensor:
        """Soft-label cross-entropy on every token of the draft's refinement towards the target."""
        logits = self.refine_logits(batch, draft)
        lo, hi = self._refine_bounds()
        target = self._refine_index(draft, batch["target_tokens"])
        return soft_token_ce(logits, target, self.p.label_sigma_bins, lo, hi).mean()

    @torch.no_grad()
    def refine(
        self, batch: Batch, draft: Tensor, temperature: float = 0.0, generator: torch.Generator | None = None,
        rows: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One refinement pass -> (tokens, confidence: probability mass of the decoding window). Greedy passes
        add params.refine_keep_bias to the keep-the-draft logit; sampled ones (RL) read the plain policy.
        `rows` as in refine_logits."""
        logits = self.refine_logits(batch, draft, rows).float()
        if temperature == 0 and self.refine_head is not None and self.p.refine_keep_bias:
            logits[..., self.p.refine_offset_bins] += self.p.refine_keep_bias
        probs = torch.softmax(logits / effective_temperature(temperature), -1)
        if temperature > 0:
            centre = sample_ids(probs, generator)
        else:
            centre = probs.argmax(-1)
        lo, hi = self._refine_bounds()
        index, conf = window_decode(probs, centre, self.p.decode_window_bins, lo, hi)
        return self._refine_tokens(draft, index), conf

    def refine_logprobs(self, batch: Batch, draft: Tensor, refined: Tensor, temperature: float = 0.0,
                        rows: Tensor | None = None) -> Tensor:
        """(B, 24) differentiable log pi_refine(refined | draft), for refinement RL (`rows` as in refine_logits)."""
        logits = self.refine_logits(batch, draft, rows).float() / effective_temperature(temperature)
        index = self._refine_index(draft, refined)
        return torch.log_softmax(logits, -1).gather(-1, index[..., None])[..., 0]


def _stack_cache(cache: PromptCache) -> PromptCache:
    """The prompt cache for [batch ; batch] (complementary masking)."""
    kv = [(torch.cat([k, k]), torch.cat([v, v])) for k, v in cache.kv]
    return PromptCache(kv, torch.cat([cache.hidden, cache.hidden]), cache.task)


def perturb_tokens(tokens: Tensor, sigma_bins: float, generator: torch.Generator | None = None) -> Tensor:
    """A synthetic draft: every token moved by round(N(0, sigma)) bins, kept inside its own range
    (x/y tokens stay x/y bins, heading tokens stay heading bins)."""
    noise = torch.randn(tokens.shape, device=tokens.device, generator=generator) * sigma_bins
    moved = tokens + noise.round().long()
    lo, hi = kind_bounds(tokens.shape[-1], tokens.device)
    return torch.maximum(torch.minimum(moved, hi), lo)
