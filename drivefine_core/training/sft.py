"""Supervised fine-tuning of the planners, one phase per objective group.

- DriveFine: the generation expert (masked diffusion) and the refinement expert in one run. The generation
  expert trains alone for the first `refine_start` of the steps; then the refinement expert's blocks are
  copied from it (the warm start from a trained generator) and it learns to map the generator's drafts
  (ModelParams.refine_draft) to the target; the models' gradient blocking keeps its loss off the shared
  blocks, so the two losses can simply be added.
- The vision towers also learn the auxiliary BEV raster when the samples carry one ("bev"; sft.bev_weight).
- SpanVLA: the autoregressive VLM first (it is also the AR baseline), then the flow expert(s) on the frozen
  VLM (the planner detaches the VLM's keys/values; only the expert's parameters are optimised). The frozen
  VLM's prompt keys/values are computed once per sample when they fit (training/prompt_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from torch import Tensor

from drivefine_core.models import DriveFinePlanner, Planner, PlannerBatch, SpanVLAPlanner
from drivefine_core.training.data import SeededBatches
from drivefine_core.training.loop import MetricsCallback, Trainer, TrainResult, make_accelerator
from drivefine_core.training.params import OptimParams, SFTParams
from drivefine_core.training.prompt_cache import WithPromptKV, prompt_kv_of

PHASES = {"drivefine": ("drivefine",), "spanvla": ("ar", "flow")}


def _batches(dataset: Sequence[Any], p: OptimParams, acc: Accelerator):
    order = SeededBatches(dataset, p.batch_size, p.seed, acc.process_index, acc.num_processes, grad_accum=p.grad_accum)
    return lambda k: PlannerBatch.of(order(k), acc.device)


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
    """One SFT phase of the planner's family (PHASES): 'drivefine' (mdm + refine), 'ar', or 'flow'
    (flow [+ flow-noise] on the frozen VLM). Only the phase's modules are optimised."""
    if phase not in PHASES.get(planner.family, ()):
        raise ValueError(f"unknown SFT phase '{phase}' for the {planner.family} planner "
                         f"(its phases: {PHASES.get(planner.family)})")
    bev = {"mdm_bev": sft.bev_weight, "ar_bev": sft.bev_weight}
    if phase == "drivefine":
        assert isinstance(planner, DriveFinePlanner)
        p, objectives, weights = sft.drivefine, ("mdm", "refine"), {"refine": sft.refine_weight, **bev}
        modules = [planner.drivefine]
    elif phase == "ar":
        assert isinstance(planner, SpanVLAPlanner)
        p, objectives, weights, modules = sft.ar, ("ar",), bev, [planner.ar]
    else:
        assert isinstance(planner, SpanVLAPlanner)
        p, weights = sft.flow, {}
        objectives = ("flow", "flow-noise") if sft.train_flow_noise else ("flow",)
        modules = [planner.expert(o) for o in objectives]
    params = [q for m in modules for q in m.parameters()]
    acc = accelerator or make_accelerator()
    if phase == "flow" and planner.params.dropout == 0:  # the VLM is frozen: its prompt pass, once per sample
        assert isinstance(planner, SpanVLAPlanner)
        planner.to(acc.device)
        kv = prompt_kv_of(lambda b: planner.ar.encode_prompt(b).kv, dataset, sft.flow_prompt_cache_mb, acc.device)
        dataset = WithPromptKV(dataset, kv) if kv is not None else dataset
    # one clipping group per module: the history flow and its noise-initialised ablation must not share a norm
    trainer = Trainer(planner, params, p, accelerator=acc, checkpoint_dir=checkpoint_dir,
                      log_metrics=log_metrics, name=f"sft_{phase}", run_key=f"sft/{phase}/{p.model_dump_json()}",
                      clip_groups=[list(m.parameters()) for m in modules])
    batch_fn = _batches(dataset, p, acc)
    refine_from = int(round(sft.refine_start * p.steps)) if phase == "drivefine" else 0
    warmed: list[bool] = []

    def loss_fn(batch: PlannerBatch, g: Any) -> tuple[Tensor, dict[str, float]]:
        if sft.bev_weight == 0:
            batch = batch.without("bev", "bev_valid")
        active = ("mdm",) if trainer.step < refine_from else objectives
        # once, at the switch (a run resumed later restores the copied and trained blocks instead)
        if refine_from and trainer.step == refine_from and not warmed:
            assert isinstance(planner, DriveFinePlanner)
            planner.drivefine.backbone.warm_start("generate", "refine")
            warmed.append(True)
        return planner(batch, active, weights, generator=g)

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
    """Every phase of a variant (a planner family: 'drivefine' or 'spanvla') in order; {phase: result}."""
    if variant not in PHASES:
        raise ValueError(f"unknown SFT variant '{variant}' (variants: {sorted(PHASES)})")
    if variant != planner.family:
        raise ValueError(f"SFT variant '{variant}' given a {planner.family} planner")
    if sft.max_samples:
        dataset = [dataset[i] for i in range(min(len(dataset), sft.max_samples))]
    out: dict[str, TrainResult] = {}
    for phase in PHASES[variant]:
        ckpt = Path(checkpoint_root) / variant / phase if checkpoint_root is not None else None
        out[phase] = train_phase(planner, phase, dataset, sft, accelerator=accelerator, checkpoint_dir=ckpt,
                                 log_metrics=log_metrics)
    return out
