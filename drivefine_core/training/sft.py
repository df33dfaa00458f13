"""Supervised fine-tuning of the planners, one phase per objective group.

- DriveFine: the generation expert (masked diffusion) and the refinement expert in one run. The generation
  expert trains alone for the first `refine_start` of the steps; then the refinement expert's blocks are
  copied from it (the warm start from a trained generator) and it learns to map the generator's drafts
  (ModelParams.refine_draft) to the target; the models' gradient blocking keeps its loss off the shared
  blocks, so the two losses can simply be added.
- The vision towers also learn the auxiliary BEV raster when the samples carry one ("bev"; sft.bev_weight).
- SpanVLA: the autoregressive VLM first (it is also the AR baseline), then the flow expert(s) on the frozen
  VLM (the planner detaches the VLM's keys/values; only the expert's parameters are optimised).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from torch import Tensor

from drivefine_core.models import Planner
from drivefine_core.training.data import SeededBatches, to_model_batch
from drivefine_core.training.loop import MetricsCallback, Trainer, TrainResult, make_accelerator
from drivefine_core.training.params import OptimParams, SFTParams

PHASES = {"drivefine": ("drivefine",), "spanvla": ("ar", "flow")}


def _batches(dataset: Sequence[Any], p: OptimParams, acc: Accelerator):
    order = SeededBatches(dataset, p.batch_size, p.seed, acc.process_index, acc.num_processes, grad_accum=p.grad_accum)
    return lambda k: to_model_batch(order(k), acc.device)


def _sum(parts: dict[str, Tensor], weights: dict[str, float]) -> tuple[Tensor, dict[str, float]]:
    total = sum(weights.get(k, 1.0) * v for k, v in parts.items())
    assert isinstance(total, Tensor)
    logs = {f"loss_{k}": float(v.detach()) for k, v in parts.items()}
    logs["loss"] = float(total.detach())
    return total, logs


def train_phase(
    planner: Planner,
    phase: str,
    dataset: Sequence[Any],
    sft: SFTParams,
    *,
    accelerator: Accelerator | None = None,
    checkpoint_dir: str | Path | None = None,
    log_metrics: MetricsCallback | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """One SFT phase: 'drivefine' (mdm + refine), 'ar', or 'flow' (flow [+ flow-noise] on the frozen VLM)."""
    bev = {"mdm_bev": sft.bev_weight, "ar_bev": sft.bev_weight}
    if phase == "drivefine":
        p, module, objectives = sft.drivefine, planner.drivefine, ("mdm", "refine")
        weights = {"refine": sft.refine_weight, **bev}
        params = list(module.parameters())
    elif phase == "ar":
        p, objectives, weights = sft.ar, ("ar",), bev
        params = list(planner.ar.parameters())
    elif phase == "flow":
        p, weights = sft.flow, {}
        objectives = ("flow", "flow-noise") if sft.train_flow_noise else ("flow",)
        params = list(planner.flow.parameters())
        if sft.train_flow_noise:
            params += list(planner.flow_noise.parameters())
    else:
        raise ValueError(f"unknown SFT phase '{phase}' (phases: drivefine, ar, flow)")
    acc = accelerator or make_accelerator()
    trainer = Trainer(planner, params, p, accelerator=acc, checkpoint_dir=checkpoint_dir,
                      log_metrics=log_metrics, name=f"sft_{phase}", run_key=f"sft/{phase}/{p.model_dump_json()}")
    batch_fn = _batches(dataset, p, acc)
    refine_from = int(round(sft.refine_start * p.steps)) if phase == "drivefine" else 0

    def loss_fn(batch: dict[str, Tensor], g: Any) -> tuple[Tensor, dict[str, float]]:
        if sft.bev_weight == 0:
            batch = {k: v for k, v in batch.items() if k not in ("bev", "bev_valid")}
        active = ("mdm",) if trainer.step < refine_from else objectives
        # once, at the switch (a run resumed later restores the copied and trained blocks instead)
        if refine_from and trainer.step == refine_from and not warmed:
            planner.drivefine.backbone.warm_start("generate", "refine")
            warmed.append(True)
        return _sum(planner.losses(batch, active, generator=g), weights)

    warmed: list[bool] = []

    return trainer.fit(batch_fn, loss_fn, on_step)


def train_sft(
    planner: Planner,
    variant: str,
    dataset: Sequence[Any],
    sft: SFTParams,
    *,
    accelerator: Accelerator | None = None,
    checkpoint_root: str | Path | None = None,
    log_metrics: MetricsCallback | None = None,
) -> dict[str, TrainResult]:
    """Every phase of a variant in order ('drivefine' or 'spanvla'); {phase: result}."""
    if variant not in PHASES:
        raise ValueError(f"unknown SFT variant '{variant}' (variants: {sorted(PHASES)})")
    if sft.max_samples:
        dataset = [dataset[i] for i in range(min(len(dataset), sft.max_samples))]
    out: dict[str, TrainResult] = {}
    for phase in PHASES[variant]:
        ckpt = Path(checkpoint_root) / variant / phase if checkpoint_root is not None else None
        out[phase] = train_phase(planner, phase, dataset, sft, accelerator=accelerator, checkpoint_dir=ckpt,
                                 log_metrics=log_metrics)
    return out
