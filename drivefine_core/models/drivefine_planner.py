"""DriveFine's planner: the masked-diffusion generation expert and the block-MoE refinement expert
(models/drivefine.py) behind the planner contract (planner.py).

  mdm         S masked-diffusion steps of the generation expert
  mdm+refine  the same, then one pass of the refinement expert over the draft
Objectives: 'mdm' trains vision + shared + generation blocks (+ 'mdm_bev', the auxiliary BEV loss);
'refine' only the refinement blocks, on drafts of params.refine_draft.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from drivefine_core.models.backbone import PromptCache
from drivefine_core.models.batch import Batch
from drivefine_core.models.drivefine import GENERATE, DriveFineModel, perturb_tokens
from drivefine_core.models.params import ModelParams
from drivefine_core.models.planner import Planner, PlanOutput, count, tokens_to_poses


class DriveFinePlanner(Planner):
    family = "drivefine"
    objectives = ("mdm", "refine")
    components = ("drivefine",)

    def __init__(self, params: ModelParams | None = None) -> None:
        super().__init__(params)
        self.drivefine = DriveFineModel(self.params)

    def _plan(self, batch: Batch, mode: str, generator: torch.Generator | None, options: dict[str, Any]) -> PlanOutput:
        out = self.drivefine.decode(batch, generator=generator, **options)
        tokens, conf = out.tokens, out.confidences
        if mode == "mdm+refine":
            tokens, conf = self.drivefine.refine(batch, tokens)
        return PlanOutput(tokens_to_poses(tokens), conf, tokens)

    def _losses(self, batch: Batch, names: list[str], generator: torch.Generator | None) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        prompt = self.drivefine.backbone.encode_prompt(batch, GENERATE) if "mdm" in names else None
        if prompt is not None:
            out.update({"mdm" if k == "mdm" else f"mdm_{k}": v
                        for k, v in self.drivefine.generation_losses(batch, generator, prompt).items()})
        if "refine" in names:
            # without dropout the generation loss's prompt pass is the one the drafts' eval-mode decoding runs
            shared = prompt if self.params.dropout == 0 else None
            out["refine"] = self.drivefine.refinement_loss(batch, self.refinement_drafts(batch, generator, shared))
        return out

    def refinement_drafts(self, batch: Batch, generator: torch.Generator | None = None,
                          prompt: PromptCache | None = None) -> Tensor:
        """SFT drafts for the refinement expert (params.refine_draft). `prompt`: the batch's generation prompt
        pass, when the caller already ran it."""
        if self.params.refine_draft == "decode":
            was_training = self.training
            self.eval()
            draft = self.drivefine.decode(batch, steps=self.params.refine_draft_steps, prompt=prompt,
                                          temperature=self.params.refine_draft_temperature, generator=generator).tokens
            self.train(was_training)
            return draft
        return perturb_tokens(batch["target_tokens"], self.params.refine_noise_bins, generator)

    def parameter_counts(self) -> dict[str, int]:
        b = self.drivefine.backbone
        return {
            "drivefine.vision": count(b.prompt.vision),
            "drivefine.prompt(other)": count(b.prompt) - count(b.prompt.vision),
            "drivefine.embeddings+head": count(b.tok) + count([b.ans_pos, b.head.weight]),
            "drivefine.shared_blocks": count(b.shared),
            "drivefine.generation_expert": count(b.experts["generate"]) + count(b.norms["generate"]),
            "drivefine.refinement_expert": count(b.experts["refine"]) + count(b.norms["refine"]),
            "drivefine.total": count(self.drivefine),
        }
