"""The planner facade: every model of the project behind plan / losses / save / load.

Modes of `plan`:
  mdm         DriveFine generation expert, S masked-diffusion steps
  mdm+refine  the same, then one pass of the refinement expert over the draft
  ar          SpanVLA's language model decoding the 24 tokens one by one
  flow        SpanVLA: one prompt pass of the AR backbone, then N Euler steps of the history-initialised flow
  flow-noise  the pi0 noise-initialised flow (ablation)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from drivefine_core.features import tokenizer
from drivefine_core.models.autoregressive import AutoregressiveModel
from drivefine_core.models.batch import Batch, check_batch
from drivefine_core.models.drivefine import DriveFineModel, perturb_tokens
from drivefine_core.models.flow import FlowPolicy
from drivefine_core.models.modes import MODES
from drivefine_core.models.params import NUM_POSES, ModelParams
from drivefine_core.models.weights import CONFIG_FILE, WEIGHTS_FILE, load_checked, read_state, save_json, save_state

LOSSES = ("mdm", "refine", "ar", "flow", "flow-noise")
COMPONENTS = ("drivefine", "ar", "flow", "flow_noise")


@dataclass
class PlanOutput:
    poses: Tensor  # (B, 8, 3) ego frame, metres / radians
    confidences: Tensor  # (B, 24) token probabilities (token modes) or (B, 8) ones (flow modes: no likelihood)
    tokens: Tensor | None = None  # (B, 24) for the token modes


def tokens_to_poses(tokens: Tensor) -> Tensor:
    poses = tokenizer.decode(tokens.detach().cpu().numpy())
    return torch.from_numpy(poses.astype(np.float32)).to(tokens.device)


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


class Planner(nn.Module):
    def __init__(self, params: ModelParams | None = None) -> None:
        super().__init__()
        self.params = params or ModelParams()
        self.drivefine = DriveFineModel(self.params)
        self.ar = AutoregressiveModel(self.params)
        self.flow = FlowPolicy(self.params, "history")
        self.flow_noise = FlowPolicy(self.params, "noise")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- inference ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def plan(self, batch: Batch, mode: str = "mdm+refine", seed: int | None = None, **options: object) -> PlanOutput:
        """options: steps, temperature, remasking (mdm modes); temperature (ar);
        steps, stochastic, noise_std (flow modes)."""
        if mode not in MODES:
            raise ValueError(f"unknown planning mode '{mode}' (modes: {MODES})")
        check_batch(batch, self.params)
        g = _generator(seed, batch["image"].device)
        if mode in ("mdm", "mdm+refine"):
            out = self.drivefine.decode(batch, generator=g, **options)  # type: ignore[arg-type]
            tokens, conf = out.tokens, out.confidences
            if mode == "mdm+refine":
                tokens, conf = self.drivefine.refine(batch, tokens)
            return PlanOutput(tokens_to_poses(tokens), conf, tokens)
        if mode == "ar":
            out = self.ar.decode(batch, generator=g, **options)  # type: ignore[arg-type]
            return PlanOutput(tokens_to_poses(out.tokens), out.confidences, out.tokens)
        policy = self.flow if mode == "flow" else self.flow_noise
        kv = self.ar.encode_prompt(batch).kv
        poses = policy.sample(batch["history"], kv, generator=g, **options)  # type: ignore[arg-type]
        return PlanOutput(poses, torch.ones(poses.shape[0], NUM_POSES, device=poses.device))

    # -- training objectives -----------------------------------------------------------------------------
    def losses(self, batch: Batch, which: str | Iterable[str] = LOSSES,
               generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One scalar per objective. 'mdm' trains vision + shared + generation blocks; 'refine' only the
        refinement blocks; 'ar' the AR backbone; 'flow' / 'flow-noise' only their expert (backbone detached)."""
        names = [which] if isinstance(which, str) else list(which)
        bad = [n for n in names if n not in LOSSES]
        if bad:
            raise ValueError(f"unknown loss(es) {bad} (losses: {LOSSES})")
        check_batch(batch, self.params, ("image", "command", "velocity", "acceleration", "history", "target",
                                         "target_tokens"))
        out: dict[str, Tensor] = {}
        for name in names:
            if name in ("mdm", "ar"):  # + "<name>_bev", the auxiliary BEV loss, when the batch has "bev"
                parts = self.drivefine.generation_losses(batch, generator) if name == "mdm" else self.ar.losses(batch)
                out.update({name if k == name else f"{name}_{k}": v for k, v in parts.items()})
            elif name == "refine":
                out[name] = self.drivefine.refinement_loss(batch, self.refinement_drafts(batch, generator))
            else:
                policy = self.flow if name == "flow" else self.flow_noise
                with torch.no_grad():  # stop-gradient: the VLM is trained first, the expert reads it
                    kv = self.ar.encode_prompt(batch).kv
                out[name] = policy.loss(batch["target"], batch["history"], kv, generator)
        return out

    def refinement_drafts(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        """SFT drafts for the refinement expert (params.refine_draft)."""
        if self.params.refine_draft == "decode":
            was_training = self.training
            self.eval()
            draft = self.drivefine.decode(batch, steps=self.params.refine_draft_steps,
                                          temperature=self.params.refine_draft_temperature, generator=generator).tokens
            self.train(was_training)
            return draft
        return perturb_tokens(batch["target_tokens"], self.params.refine_noise_bins, generator)

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        save_state(d / WEIGHTS_FILE, self.state_dict(), metadata={"format": "drivefine-planner"})
        save_json(d / CONFIG_FILE, self.params.model_dump(mode="json"))

    @classmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> "Planner":
        d = Path(directory)
        cfg = d / CONFIG_FILE
        if not cfg.is_file():
            raise FileNotFoundError(f"{cfg}: no planner config")
        try:
            params = ModelParams.model_validate_json(cfg.read_text())
        except ValueError as exc:
            raise ValueError(f"{cfg}: invalid planner config: {exc}") from exc
        planner = cls(params)
        load_checked(planner, read_state(d / WEIGHTS_FILE), d / WEIGHTS_FILE, strict=True)
        return planner.to(map_location)

    def load_component(self, component: str, path: str | Path, prefix: str = "", strict: bool = True) -> list[str]:
        """Load one component's weights (e.g. a larger pretrained backbone) from a local safetensors file.

        component: 'drivefine', 'ar', 'flow' or 'flow_noise'; tensor names in the file are the component's
        own (after stripping `prefix`). Shape mismatches raise ValueError naming the file and tensor. With
        strict=False tensors missing from the file keep their values (returned as a list).
        """
        if component not in COMPONENTS:
            raise ValueError(f"unknown component '{component}' (components: {COMPONENTS})")
        path = Path(path)
        state = {k[len(prefix):]: v for k, v in read_state(path).items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f"{path}: no tensor starts with prefix '{prefix}'")
        return load_checked(getattr(self, component), state, path, strict=strict)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per module, for reports and the benchmark."""
        def n(m: nn.Module | Iterable[nn.Parameter]) -> int:
            params = m.parameters() if isinstance(m, nn.Module) else m
            return sum(p.numel() for p in params)

        dfb = self.drivefine.backbone
        return {
            "drivefine.vision": n(dfb.prompt.vision),
            "drivefine.prompt(other)": n(dfb.prompt) - n(dfb.prompt.vision),
            "drivefine.embeddings+head": n(dfb.tok) + n([dfb.ans_pos, dfb.head.weight]),
            "drivefine.shared_blocks": n(dfb.shared),
            "drivefine.generation_expert": n(dfb.experts["generate"]) + n(dfb.norms["generate"]),
            "drivefine.refinement_expert": n(dfb.experts["refine"]) + n(dfb.norms["refine"]),
            "drivefine.total": n(self.drivefine),
            "ar.total": n(self.ar),
            "flow.expert": n(self.flow),
            "flow_noise.expert": n(self.flow_noise),
        }
