"""SpanVLA's planner: the autoregressive VLM and its flow-matching action experts (models/autoregressive.py,
models/flow.py) behind the planner contract (planner.py).

  ar          the VLM decoding the 24 trajectory tokens one by one (the AR baseline)
  flow        one prompt pass of the VLM, then N Euler steps of the history-initialised flow expert
  flow-noise  the noise-initialised (pi0) flow expert: an ablation
Objectives: 'ar' trains the VLM (+ 'ar_bev'); 'flow' / 'flow-noise' only their expert, reading the VLM's
keys / values without gradient (the VLM is trained first, the expert reads it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from drivefine_core.models.autoregressive import AutoregressiveModel
from drivefine_core.models.batch import Batch
from drivefine_core.models.flow import FlowPolicy
from drivefine_core.models.layers import unstack_kv
from drivefine_core.models.params import NUM_POSES, ModelParams
from drivefine_core.models.planner import Planner, PlanOutput, count, tokens_to_poses


class SpanVLAPlanner(Planner):
    family = "spanvla"
    objectives = ("ar", "flow", "flow-noise")
    components = ("ar", "flow", "flow_noise")

    def __init__(self, params: ModelParams | None = None) -> None:
        super().__init__(params)
        self.ar = AutoregressiveModel(self.params)
        self.flow = FlowPolicy(self.params, "history")
        self.flow_noise = FlowPolicy(self.params, "noise")

    def expert(self, mode: str) -> FlowPolicy:
        return self.flow if mode == "flow" else self.flow_noise

    def _plan(self, batch: Batch, mode: str, generator: torch.Generator | None, options: dict[str, Any]) -> PlanOutput:
        if mode == "ar":
            out = self.ar.decode(batch, generator=generator, **options)
            return PlanOutput(tokens_to_poses(out.tokens), out.confidences, out.tokens)
        kv = self.ar.encode_prompt(batch).kv
        poses = self.expert(mode).sample(batch, kv, generator=generator, **options)
        return PlanOutput(poses, torch.ones(poses.shape[0], NUM_POSES, device=poses.device))

    def _losses(self, batch: Batch, names: list[str], generator: torch.Generator | None) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if "prompt_kv" in batch and "ar" in names:
            raise ValueError("batch field 'prompt_kv' holds a frozen VLM's keys/values; it cannot go with "
                             "the objective 'ar', which trains the VLM")
        if "ar" in names:
            out.update({"ar" if k == "ar" else f"ar_{k}": v for k, v in self.ar.losses(batch).items()})
        flows = [n for n in names if n != "ar"]
        if flows and "prompt_kv" in batch:
            kv = unstack_kv(batch["prompt_kv"])
        elif flows:
            with torch.no_grad():  # stop-gradient: the expert reads the trained VLM
                kv = self.ar.encode_prompt(batch).kv
        for name in flows:
            out[name] = self.expert(name).loss(batch, kv, generator)
        return out

    def parameter_counts(self) -> dict[str, int]:
        return {"ar.total": count(self.ar), "flow.expert": count(self.flow), "flow_noise.expert": count(self.flow_noise)}
