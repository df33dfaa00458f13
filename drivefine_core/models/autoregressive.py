"""SpanVLA's language model, reduced to its action part: a prefix-LM that decodes the 24 trajectory tokens
one by one (the autoregressive baseline, AutoVLA-style), with a KV cache over prompt and earlier tokens.

The prompt attends bidirectionally to itself (as a VLM's image/text prefix is processed in one pass); the
answer is causal. Input at answer slot i is [BOS] for i = 0, else token i-1; slot i predicts token i.
Its prompt pass also feeds the flow-matching action expert (flow.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drivefine_core.models.backbone import Backbone, PromptCache
from drivefine_core.models.batch import Batch
from drivefine_core.models.drivefine import DecodeOutput, effective_temperature
from drivefine_core.models.layers import KV
from drivefine_core.models.params import NUM_ANSWER_TOKENS, ModelParams
from drivefine_core.models.token_codec import sample_ids

ACT = "act"


class AutoregressiveModel(nn.Module):
    def __init__(self, p: ModelParams) -> None:
        super().__init__()
        self.p = p
        self.backbone = Backbone(p, (ACT,), 0, causal=True)

    def shifted_inputs(self, tokens: Tensor) -> Tensor:
        bos = torch.full_like(tokens[:, :1], self.backbone.bos_id)
        return torch.cat([bos, tokens[:, :-1]], dim=1)

    def encode_prompt(self, batch: Batch) -> PromptCache:
        return self.backbone.encode_prompt(batch, ACT)

    def logprobs(self, batch: Batch, tokens: Tensor, temperature: float = 0.0) -> Tensor:
        """(B, 24) differentiable log pi(token_i | prompt, tokens_<i), teacher-forced in one pass (GRPO)."""
        logits = self.backbone.forward_answer(self.shifted_inputs(tokens), self.encode_prompt(batch))
        logp = torch.log_softmax(logits.float() / effective_temperature(temperature), -1)
        return logp.gather(-1, tokens[..., None])[..., 0]

    def loss(self, batch: Batch) -> Tensor:
        return self.losses(batch)["ar"]

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """{"ar": teacher-forced soft-label CE} (+ "bev": the auxiliary BEV loss when the batch has "bev")."""
        target = batch["target_tokens"]
        cache = self.encode_prompt(batch)
        out: dict[str, Tensor] = {}
        if "bev" in batch:
            out["bev"] = self.backbone.bev_loss(cache, batch)
        logits = self.backbone.forward_answer(self.shifted_inputs(target), cache)
        out["ar"] = self.backbone.token_loss(logits, target).mean()
        return out

    @torch.no_grad()
    def decode(
        self,
        batch: Batch,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        cache: PromptCache | None = None,
    ) -> DecodeOutput:
        temperature = self.p.temperature if temperature is None else temperature
        b, dev = batch["image"].shape[0], batch["image"].device
        bb = self.backbone
        tokens = torch.empty(b, 0, dtype=torch.long, device=dev)
        confs: list[Tensor] = []
        if use_cache:
            cache = self.encode_prompt(batch) if cache is None else cache
        past: list[KV] | None = None
        nxt = torch.full((b, 1), bb.bos_id, dtype=torch.long, device=dev)
        for i in range(NUM_ANSWER_TOKENS):
            if use_cache:
                assert cache is not None
                h, kv = bb.run_answer(bb.embed_answer(nxt, start=i), cache, past)
                past = kv if past is None else [(torch.cat([pk, k], 2), torch.cat([pv, v], 2))
                                                for (pk, pv), (k, v) in zip(past, kv)]
                logits = bb.logits(h, ACT, start=i)[:, -1]
            else:
                inputs = torch.cat([torch.full((b, 1), bb.bos_id, dtype=torch.long, device=dev), tokens], 1)
                logits = bb.forward_full(batch, inputs, ACT)[1][:, -1]
            probs = torch.softmax(logits.float() / effective_temperature(temperature), -1)
            if temperature > 0:
                centre = sample_ids(probs, generator)[:, None]
            else:
                centre = probs.argmax(-1, keepdim=True)
            nxt, conf = bb.pick(probs[:, None], centre, start=i)
            confs.append(conf[:, 0])
            tokens = torch.cat([tokens, nxt], 1)
        return DecodeOutput(tokens, torch.stack(confs, 1))
