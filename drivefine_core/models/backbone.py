"""The language-model backbone both planners share in shape.

Sequence = [prompt | answer]. The prompt is: a learned task token ("generate", "refine", "act"), the driving
command, ego velocity + acceleration, the 4 history poses (one token each) and the camera patches. The answer
is the 24 trajectory tokens. Attention follows the prefix mask: prompt rows see only the prompt, answer rows
see the prompt and the answer (all of it for the masked-diffusion LM, earlier positions only for the
autoregressive variant). Because the prompt never sees the answer, its keys/values are computed once
(`encode_prompt`) and reused by every decoding step (`forward_answer`); `forward_full` is the same computation
over the whole sequence with an explicit mask, kept as the uncached reference.

Block-MoE: blocks [0, depth - n) are shared; each expert owns the last n blocks and its own final norm. A
task names its expert. Experts listed in `detached_experts` see the shared trunk's output detached, so their
loss trains only their own blocks (and the LM head is used with detached weights on that path).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drivefine_core.features.tokenizer import position_is_heading, XY_BINS
from drivefine_core.models.batch import Batch
from drivefine_core.models.bev import BEVHead, bev_loss
from drivefine_core.models.layers import KV, Block, answer_mask, init_weights, prefix_mask
from drivefine_core.models.params import NUM_ANSWER_TOKENS, NUM_HISTORY_POSES, ModelParams
from drivefine_core.models.token_codec import ValueEmbedding, kind_bounds, soft_token_ce, window_decode
from drivefine_core.models.vision import VisionTower


@dataclass
class PromptCache:
    """Per-layer prompt keys/values along one task's path, and the prompt's final hidden states."""

    kv: list[KV]
    hidden: Tensor  # (B, P, width), before the final norm
    task: str
    vision: Tensor | None = None  # (B, N, vision_width) vision tokens (for the BEV head); dropped by repeat

    @property
    def length(self) -> int:
        return self.hidden.shape[1]

    def repeat(self, n: int) -> "PromptCache":
        """Each sample repeated n times in a row (matches batch.repeat_batch)."""
        return self if n == 1 else self.select(torch.arange(self.hidden.shape[0], device=self.hidden.device)
                                                 .repeat_interleave(n))

    def select(self, rows: Tensor) -> "PromptCache":
        """Row i of the result is sample rows[i] (e.g. the scene of each of several drafts): a prompt encoded
        once per scene serves all of them, gradients summed back where a trained block made it."""
        return PromptCache([(k[rows], v[rows]) for k, v in self.kv], self.hidden[rows], self.task)


class PromptEncoder(nn.Module):
    """Batch -> (B, P, width) prompt embeddings."""

    def __init__(self, p: ModelParams, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.p = p
        self.tasks = tasks
        self.task = nn.Embedding(len(tasks), p.width)
        self.command = nn.Linear(4, p.width)
        self.ego = nn.Linear(4, p.width)
        self.history = nn.Linear(3, p.width)
        self.vision = VisionTower(p)
        self.length = 3 + NUM_HISTORY_POSES + p.num_views * p.num_patches
        self.pos = nn.Parameter(torch.zeros(1, self.length, p.width))
        self.register_buffer("pose_scale", torch.tensor(p.action_scale), persistent=False)

    def forward(self, batch: Batch, task: str) -> Tensor:
        return self.encode(batch, task)[0]

    def encode(self, batch: Batch, task: str) -> tuple[Tensor, Tensor]:
        """-> (B, P, width) prompt embeddings, (B, N, vision_width) vision tokens."""
        if task not in self.tasks:
            raise ValueError(f"unknown task '{task}' for this backbone (tasks: {self.tasks})")
        p = self.p
        image = batch["image"]
        b = image.shape[0]
        task_ids = torch.full((b,), self.tasks.index(task), dtype=torch.long, device=image.device)
        ego = torch.cat([batch["velocity"] / p.velocity_scale, batch["acceleration"] / p.acceleration_scale], -1)
        vision = self.vision.features(image.float())
        tokens = [
            self.task(task_ids)[:, None],
            self.command(batch["command"].float())[:, None],
            self.ego(ego.float())[:, None],
            self.history(batch["history"].float() / self.pose_scale),
            self.vision.out(vision),
        ]
        return torch.cat(tokens, dim=1) + self.pos, vision


class Backbone(nn.Module):
    def __init__(
        self,
        p: ModelParams,
        experts: tuple[str, ...],
        n_expert_blocks: int,
        causal: bool,
        detached_experts: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.p, self.causal, self.detached_experts = p, causal, detached_experts
        self.mask_id, self.bos_id = p.vocab_size, p.vocab_size + 1
        self.prompt = PromptEncoder(p, experts)
        # answer-token inputs: the bins' values (token_codec) or a plain table; + [MASK] + [BOS]
        self.tok = ValueEmbedding(p.width, p.vocab_size, 2, p.value_frequencies) \
            if p.token_embedding == "value" else nn.Embedding(p.vocab_size + 2, p.width)
        self.ans_pos = nn.Parameter(torch.zeros(1, NUM_ANSWER_TOKENS, p.width))
        self.shared = nn.ModuleList(Block(p.width, p.heads, p.mlp_ratio, p.dropout)
                                    for _ in range(p.depth - n_expert_blocks))
        self.experts = nn.ModuleDict({
            name: nn.ModuleList(Block(p.width, p.heads, p.mlp_ratio, p.dropout) for _ in range(n_expert_blocks))
            for name in experts
        })
        self.norms = nn.ModuleDict({name: nn.LayerNorm(p.width) for name in experts})
        self.head = nn.Linear(p.width, p.vocab_size, bias=False)
        self.bev = BEVHead(p)  # auxiliary, training only
        # constrain_vocab: x/y positions may emit only x/y bins and heading positions only heading bins (logits)
        self._slot_cache: dict[tuple[int, int, str], list[tuple[Tensor, slice]]] = {}
        lo, hi = kind_bounds(NUM_ANSWER_TOKENS, torch.device("cpu"))
        self.register_buffer("tok_lo", lo, persistent=False)
        self.register_buffer("tok_hi", hi, persistent=False)
        init_weights(self)
        self.prompt.vision.reset_stem()
        nn.init.normal_(self.ans_pos, std=0.02)
        nn.init.normal_(self.prompt.pos, std=0.02)
        for name in experts[1:]:  # warm start: every expert begins as a copy of the first
            self.warm_start(experts[0], name)

    def warm_start(self, src: str, dst: str) -> None:
        """Copy expert `src`'s blocks and final norm into expert `dst` (the refinement expert's warm start)."""
        self.experts[dst].load_state_dict(self.experts[src].state_dict())
        self.norms[dst].load_state_dict(self.norms[src].state_dict())

    def blocks(self, task: str) -> list[Block]:
        return [*self.shared, *self.experts[task]]

    def _maybe_detach(self, x: Tensor, i: int, task: str) -> Tensor:
        return x.detach() if task in self.detached_experts and i == len(self.shared) else x

    def _trunk_ctx(self, task: str, i: int = -1) -> contextlib.AbstractContextManager[object]:
        """No autograd graph for the trunk (embeddings, vision, shared block i) on a detached expert's path:
        it gets no gradient there anyway, so its activations need not be kept."""
        frozen = task in self.detached_experts and i < len(self.shared)
        return torch.no_grad() if frozen else contextlib.nullcontext()

    def logits(self, hidden: Tensor, task: str, start: int = 0) -> Tensor:
        """Final norm + LM head over the answer hidden states of slots [start, start + T). With
        constrain_vocab a slot's logits outside its kind's bins are -inf, and only its kind's rows of the
        head are multiplied (x/y slots 4,000 of the 5,800, heading slots 1,800: 46% less head work)."""
        h = self.norms[task](hidden)
        weight = self.head.weight.detach() if task in self.detached_experts else self.head.weight
        if not self.p.constrain_vocab:
            return F.linear(h, weight)
        parts = [(slots, vocab, F.linear(h[..., slots, :], weight[vocab]))
                 for slots, vocab in self._kind_slots(start, h.shape[-2], h.device)]
        out = parts[0][2].new_full((*h.shape[:-1], weight.shape[0]), float("-inf"))  # the matmul's dtype (autocast)
        for slots, vocab, part in parts:
            out[..., slots, vocab] = part
        return out

    def _kind_slots(self, start: int, length: int, device: torch.device) -> list[tuple[Tensor, slice]]:
        """(slots of [start, start + length) of one kind, that kind's vocabulary range), kinds present only."""
        key = (start, length, str(device))
        if key not in self._slot_cache:
            heading = torch.from_numpy(position_is_heading(NUM_ANSWER_TOKENS))[start : start + length]
            kinds = ((~heading, slice(0, XY_BINS)), (heading, slice(XY_BINS, self.p.vocab_size)))
            self._slot_cache[key] = [(m.nonzero()[:, 0].to(device), v) for m, v in kinds if bool(m.any())]
        return self._slot_cache[key]

    def token_loss(self, logits: Tensor, target: Tensor, start: int = 0) -> Tensor:
        """(B, T, V) logits of answer slots [start, start + T), (B, T) target ids -> (B, T) soft-label CE."""
        sl = slice(start, start + target.shape[1])
        return soft_token_ce(logits, target, self.p.label_sigma_bins, self.tok_lo[sl], self.tok_hi[sl])

    def pick(self, probs: Tensor, centre: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        """Windowed decoding around `centre` (argmax or sample) -> (ids, confidence), slots from `start`."""
        sl = slice(start, start + centre.shape[1])
        return window_decode(probs, centre, self.p.decode_window_bins, self.tok_lo[sl], self.tok_hi[sl])

    def bev_logits(self, cache: PromptCache) -> Tensor:
        if cache.vision is None:
            raise ValueError("this prompt cache holds no vision tokens (repeated or stacked caches drop them)")
        return self.bev(cache.vision)

    def bev_loss(self, cache: PromptCache, batch: Batch) -> Tensor:
        """The auxiliary BEV loss of the prompt's vision tokens against the batch's "bev" raster."""
        return bev_loss(self.bev_logits(cache), batch["bev"], batch.get("bev_valid"), self.p.bev_dice_weight)

    def embed_answer(self, tokens: Tensor, start: int = 0) -> Tensor:
        return self.tok(tokens) + self.ans_pos[:, start : start + tokens.shape[1]]

    # -- cached path -------------------------------------------------------------------------------------
    def encode_prompt(self, batch: Batch, task: str) -> PromptCache:
        with self._trunk_ctx(task):
            x, vision = self.prompt.encode(batch, task)
        kv: list[KV] = []
        for i, blk in enumerate(self.blocks(task)):
            x = self._maybe_detach(x, i, task)
            with self._trunk_ctx(task, i):
                x, layer_kv = blk(x)  # the prompt sees only itself: no mask needed
            kv.append(layer_kv)
        return PromptCache(kv, x, task, vision)

    def run_answer(
        self, x: Tensor, cache: PromptCache, past_answer: list[KV] | None = None
    ) -> tuple[Tensor, list[KV]]:
        """Answer embeddings through the task's blocks, attending to [prompt KV ; earlier answer KV ; own]."""
        new_kv: list[KV] = []
        for i, blk in enumerate(self.blocks(cache.task)):
            x = self._maybe_detach(x, i, cache.task)
            pk, pv = cache.kv[i]
            if past_answer is not None:
                pk, pv = torch.cat([pk, past_answer[i][0]], 2), torch.cat([pv, past_answer[i][1]], 2)
            mask = answer_mask(pk.shape[2], x.shape[1], self.causal, x.device)
            with self._trunk_ctx(cache.task, i):
                x, layer_kv = blk(x, mask, (pk, pv))
            new_kv.append(layer_kv)
        return x, new_kv

    def answer_hidden(self, tokens: Tensor, cache: PromptCache) -> Tensor:
        """(B, 24) answer inputs -> (B, 24, width) last hidden states (before the final norm)."""
        with self._trunk_ctx(cache.task):
            x = self.embed_answer(tokens)
        return self.run_answer(x, cache)[0]

    def forward_answer(self, tokens: Tensor, cache: PromptCache) -> Tensor:
        """(B, 24) answer inputs -> (B, 24, vocab) logits, reusing the prompt cache."""
        return self.logits(self.answer_hidden(tokens, cache), cache.task)

    # -- uncached reference ------------------------------------------------------------------------------
    def forward_full(self, batch: Batch, tokens: Tensor, task: str) -> tuple[Tensor, Tensor]:
        """The whole sequence in one pass with the explicit prefix mask -> (prompt hidden, answer logits)."""
        with self._trunk_ctx(task):
            prompt = self.prompt(batch, task)
            x = torch.cat([prompt, self.embed_answer(tokens)], dim=1)
        n_prompt = prompt.shape[1]
        mask = prefix_mask(n_prompt, tokens.shape[1], self.causal, x.device)
        for i, blk in enumerate(self.blocks(task)):
            x = self._maybe_detach(x, i, task)
            with self._trunk_ctx(task, i):
                x, _ = blk(x, mask)
        return x[:, :n_prompt], self.logits(x[:, n_prompt:], task)
