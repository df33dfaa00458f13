"""The planner contract every family keeps, and building / loading a family's planner by name.

A family (models/modes.py) is one paper's planner, its own nn.Module with only its own weights:
  DriveFinePlanner (drivefine_planner.py)  generation + refinement experts    modes mdm, mdm+refine
  SpanVLAPlanner (spanvla_planner.py)      AR VLM + flow experts              modes ar, flow, flow-noise

The contract:
  plan(batch, mode, seed)                     -> PlanOutput, no gradient
  forward(batch, objectives, weights, g)      -> (weighted loss, logs): one training step's objective
  losses(batch, objectives, g)                -> {objective: scalar}, what forward sums
  save(dir) / Planner.load(dir)               config.json names the family; Planner.load builds that class
  load_component(name, file)                  a bigger or pretrained sub-module from a local safetensors file
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from drivefine_core.features import tokenizer
from drivefine_core.models.batch import Batch, check_batch
from drivefine_core.models.modes import FAMILY_OF, MODES, RL_MODE, check_family, modes_of
from drivefine_core.models.params import ModelParams
from drivefine_core.models.weights import CONFIG_FILE, WEIGHTS_FILE, load_checked, read_state, save_json, save_state

TRAINING_FIELDS = ("image", "command", "velocity", "acceleration", "history", "target", "target_tokens")


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


def planner_class(family: str) -> type[Planner]:
    # imported here because the family modules import this one; plain imports keep them in the stages'
    # import closure (dvc.yaml deps)
    from drivefine_core.models.drivefine_planner import DriveFinePlanner
    from drivefine_core.models.spanvla_planner import SpanVLAPlanner

    classes: dict[str, type[Planner]] = {c.family: c for c in (DriveFinePlanner, SpanVLAPlanner)}
    return classes[check_family(family)]


class Planner(nn.Module):
    """Base of the family planners. Subclasses set `family`, `objectives` (loss names, in training order),
    `components` (sub-module attributes load_component may fill) and implement _plan and _losses."""

    family: ClassVar[str]
    objectives: ClassVar[tuple[str, ...]]
    components: ClassVar[tuple[str, ...]]

    def __init__(self, params: ModelParams | None = None) -> None:
        super().__init__()
        self.params = params or ModelParams()

    @staticmethod
    def build(family: str, params: ModelParams | None = None) -> Planner:
        return planner_class(family)(params)

    @property
    def modes(self) -> tuple[str, ...]:
        return modes_of(self.family, ablations=True)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- inference ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def plan(self, batch: Batch, mode: str | None = None, seed: int | None = None, **options: Any) -> PlanOutput:
        """mode: one of self.modes (None: the family's method, RL_MODE). options: steps, temperature,
        remasking (mdm modes); temperature (ar); steps, stochastic, noise_std (flow modes)."""
        mode = mode or RL_MODE[self.family]
        if mode not in self.modes:
            hint = f"; '{mode}' is a mode of the {FAMILY_OF[mode]} planner" if mode in MODES else ""
            raise ValueError(f"{self.family} planner: unknown planning mode '{mode}' (its modes: {self.modes}{hint})")
        check_batch(batch, self.params)
        return self._plan(batch, mode, _generator(seed, batch["image"].device), options)

    def _plan(self, batch: Batch, mode: str, generator: torch.Generator | None, options: dict[str, Any]) -> PlanOutput:
        raise NotImplementedError

    # -- training ----------------------------------------------------------------------------------------
    def losses(self, batch: Batch, which: str | Iterable[str] | None = None,
               generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One scalar per objective (None: all of the family's). An objective may add auxiliary terms named
        '<objective>_<term>' (e.g. 'mdm_bev', the BEV loss when the batch carries "bev")."""
        names = list(self.objectives) if which is None else [which] if isinstance(which, str) else list(which)
        bad = [n for n in names if n not in self.objectives]
        if bad:
            raise ValueError(f"{self.family} planner: unknown objective(s) {bad} (its objectives: {self.objectives})")
        check_batch(batch, self.params, TRAINING_FIELDS)
        return self._losses(batch, names, generator)

    def _losses(self, batch: Batch, names: list[str], generator: torch.Generator | None) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, batch: Batch, objectives: str | Iterable[str] | None = None,
                weights: Mapping[str, float] | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        """The training objective: sum of weight * loss (weight 1 unless given), and logs
        {"loss": total, "loss_<name>": each term}."""
        parts = self.losses(batch, objectives, generator)
        weights = weights or {}
        total = sum((weights.get(k, 1.0) * v for k, v in parts.items()), torch.zeros((), device=self.device))
        logs = {f"loss_{k}": float(v.detach()) for k, v in parts.items()}
        logs["loss"] = float(total.detach())
        return total, logs

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        save_state(d / WEIGHTS_FILE, self.state_dict(), metadata={"format": f"drivefine-planner/{self.family}"})
        save_json(d / CONFIG_FILE, {"family": self.family, "model": self.params.model_dump(mode="json")})

    @staticmethod
    def load(directory: str | Path, map_location: str | torch.device = "cpu") -> Planner:
        """The planner saved in `directory`, as its family's class."""
        d = Path(directory)
        cfg = d / CONFIG_FILE
        if not cfg.is_file():
            raise FileNotFoundError(f"{cfg}: no planner config")
        try:
            config = json.loads(cfg.read_text())
            if not isinstance(config, dict) or "family" not in config or "model" not in config:
                raise ValueError("expected {'family': ..., 'model': {...}} (a planner saved before the families "
                                 "were split holds both families' weights; retrain it)")
            cls = planner_class(config["family"])
            params = ModelParams.model_validate(config["model"])
        except ValueError as exc:
            raise ValueError(f"{cfg}: invalid planner config: {exc}") from exc
        planner = cls(params)
        load_checked(planner, read_state(d / WEIGHTS_FILE), d / WEIGHTS_FILE, strict=True)
        return planner.to(map_location)

    def load_component(self, component: str, path: str | Path, prefix: str = "", strict: bool = True) -> list[str]:
        """Load one component's weights (e.g. a larger pretrained backbone) from a local safetensors file.

        component: one of self.components; tensor names in the file are the component's own (after stripping
        `prefix`). Shape mismatches raise ValueError naming the file and tensor. With strict=False tensors
        missing from the file keep their values (returned as a list).
        """
        if component not in self.components:
            raise ValueError(f"{self.family} planner: unknown component '{component}' (its components: "
                             f"{self.components})")
        path = Path(path)
        state = {k[len(prefix):]: v for k, v in read_state(path).items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f"{path}: no tensor starts with prefix '{prefix}'")
        return load_checked(getattr(self, component), state, path, strict=strict)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per module, for reports and the benchmarks."""
        raise NotImplementedError


def count(m: nn.Module | Iterable[nn.Parameter]) -> int:
    params = m.parameters() if isinstance(m, nn.Module) else m
    return sum(p.numel() for p in params)
