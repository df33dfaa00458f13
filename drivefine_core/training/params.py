"""Knobs of SFT and RL. Small defaults (CPU, tests); the paper's settings are noted where they differ."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from drivefine_core.models.modes import Family
from drivefine_core.params_base import Section as _Section

Precision = Literal["no", "bf16", "fp16"]
Variant = Family


class OptimParams(_Section):
    """One optimisation run: AdamW + cosine schedule with linear warm-up."""

    steps: int = Field(60, ge=1, description="optimizer steps (after gradient accumulation)")
    batch_size: int = Field(8, ge=1, description="samples per micro-batch per process")
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-3, gt=0)  # paper SFT: 4e-5 on a pretrained 8B backbone; from scratch needs more
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = Field(1.0, ge=0, description="0 = no clipping")
    mixed_precision: Precision = "no"
    seed: int = 0
    checkpoint_every: int = Field(0, ge=0, description="save a resumable checkpoint every N steps (0 = never)")
    log_every: int = Field(1, ge=1)


class SFTParams(_Section):
    """Stage sft: which planners to train and how long each phase runs."""

    variants: list[Variant] = Field(default_factory=lambda: ["drivefine", "spanvla"])
    # DriveFine: generation (masked diffusion) + refinement expert in one run, one loss each
    drivefine: OptimParams = OptimParams()
    refine_weight: float = Field(1.0, ge=0)
    # the refinement expert starts after this fraction of the DriveFine steps: its blocks are then copied from
    # the trained generation expert (the warm start) and it learns on the generator's own drafts
    refine_start: float = Field(0.6, ge=0, lt=1)
    # weight of the auxiliary BEV loss of the vision towers (mdm and ar phases; 0 = off)
    bev_weight: float = Field(1.0, ge=0)
    # SpanVLA: the autoregressive VLM first (also the AR baseline), then the flow expert on the frozen VLM
    ar: OptimParams = OptimParams()
    flow: OptimParams = OptimParams()
    train_flow_noise: bool = Field(True, description="also train the noise-initialised flow (pi0 ablation)")
    flow_prompt_cache_mb: float = Field(4096, ge=0, description="the flow phase computes the frozen VLM's "
                                        "prompt keys/values once per sample when they fit in this many MiB "
                                        "(training/prompt_cache.py; 0 = encode every step)")
    max_samples: int = Field(0, ge=0, description="cap on training samples (0 = all)")
    # leave out the logs RL selects its checkpoint on (rl.validation_logs), so that the selection compares
    # policies on logs that neither SFT nor RL trained on
    hold_out_validation_logs: bool = True


class GRPOParams(_Section):
    """DriveFine GRPO on the generation expert (paper: G=10, lr 1e-6 on 8B, 1 epoch, batch 16)."""

    group_size: int = Field(6, ge=2)
    decode_steps: int | None = Field(None, ge=1, le=24, description="s: masked-diffusion steps while sampling "
                                     "(None: the model's mdm_steps, as evaluation decodes)")
    merge_tau: int = Field(2, ge=1, description="merge every tau neighbouring steps (keep floor(s/tau) states)")
    temperature: float = Field(0.5, gt=0, description="sampling temperature of the rollouts (low: samples stay "
                               "near the greedy plan that evaluation scores)")
    normalise_std: bool = Field(True, description="advantages (r - mean) / std per group (DriveFine: no std)")
    clip_eps: float = Field(0.2, gt=0)
    kl_beta: float = Field(0.05, ge=0, description="KL to the frozen SFT policy (anchor)")
    bc_weight: float = Field(0.1, ge=0, description="behaviour-cloning (SFT loss on the logged target) anchor")
    train_generator: bool = Field(True, description="GRPO (+ KL and BC) updates the generation side: trunk, "
                                  "vision, generation expert, head. False: the rollouts only feed refinement "
                                  "RL, which then trains the refinement expert alone on the frozen generator")


class RefineRLParams(_Section):
    """Refinement-expert RL: offline pairs from the G drafts + K online refinements per draft."""

    enabled: bool = True
    online_k: int = Field(2, ge=0, description="K refinements sampled per draft (paper: 6)")
    max_pairs: int = Field(16, ge=0, description="offline (i, j) pairs per scene, sampled (0 = none)")
    # low: refinements sampled at 1.0 from a from-scratch expert score far below their drafts (0.46 vs 0.94
    # PDMS on validation), so every online advantage is negative and says nothing about which edits help
    temperature: float = Field(0.3, gt=0)
    weight: float = Field(1.0, ge=0)


class FlowGRPOParams(_Section):
    """SpanVLA GRPO on the flow expert with negative and recovery rewards (paper G=64, lr 3e-5)."""

    group_size: int = Field(8, ge=2)
    step_noise: float = Field(0.01, gt=0, description="std of the Gaussian per Euler step (normalised units: "
                              "0.01 = 0.3 m in x, 0.1 m in y with the default action scales)")
    init_noise: float = Field(0.0, ge=0, description="std of the initial-state noise (no log-prob: a_his is fixed)")
    kl_beta: float = Field(0.1, ge=0, description="KL to the SFT expert, per dimension (anchor; see bench numbers)")
    w_negative: float = Field(0.5, ge=0)
    w_recovery: float = Field(0.3, ge=0)
    closeness_sigma_m: float = Field(2.0, gt=0, description="sigma of exp(-mean ||a-b||^2 / sigma^2)")
    recovery_converge_s: float = Field(2.0, gt=0, description="time to return to the centreline")
    negative_shifts_m: list[float] = Field(default_factory=lambda: [-4.0, -2.5, 2.5, 4.0])
    negative_speed_factors: list[float] = Field(default_factory=lambda: [0.0, 1.6, 2.2])


class RLParams(_Section):
    """Stage rl: reward, steps and the per-algorithm settings."""

    variants: list[Variant] = Field(default_factory=lambda: ["drivefine", "spanvla"])
    reward: Literal["v1/pdms", "v2/epdms"] = "v1/pdms"
    optim: OptimParams = OptimParams(steps=20, batch_size=4, lr=1e-4, warmup_steps=0, min_lr_ratio=1.0)
    variant_optim: dict[Variant, dict[str, Any]] = Field(
        default_factory=dict, description="a variant's own optimiser settings over `optim` (any of its fields; "
        "absent: optim): a flow GRPO step costs a tenth of a DriveFine one, so the flow affords more steps; "
        "DriveFine's refinement expert trained alone takes a larger lr, warmed up and decayed")
    grpo: GRPOParams = GRPOParams()
    refine: RefineRLParams = RefineRLParams()
    flow: FlowGRPOParams = FlowGRPOParams()
    eval_scenes: int = Field(16, ge=1, description="scenes for the mean reward before / after")
    max_samples: int = Field(0, ge=0, description="cap on RL scenes (0 = all with a metric cache)")
    # checkpoint selection (training/rl_select.py): RL returns the weights with the best greedy reward on
    # held-out logs of the train split (the SFT policy at step 0 included); never the test split
    validation_logs: int = Field(0, ge=0, description="logs of the train split held out from RL and used only to "
                                 "select the returned checkpoint (the last ones by name; 0 = off: final weights)")
    validate_every: int = Field(5, ge=1, description="optimizer steps between validations (also at step 0 and "
                                "at the last step)")
    validation_scenes: int = Field(0, ge=0, description="cap on held-out scenes scored per validation, evenly "
                                   "spaced (0 = all)")

    def optim_for(self, variant: str) -> OptimParams:
        over = self.variant_optim.get(variant)  # type: ignore[call-overload]
        return OptimParams.model_validate({**self.optim.model_dump(), **over}) if over else self.optim

    @model_validator(mode="after")
    def _check(self) -> "RLParams":
        for variant in self.variant_optim:
            try:
                self.optim_for(variant)
            except ValidationError as exc:  # the error names rl.variant_optim.<variant>.<field>
                fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise ValueError(f"rl.variant_optim.{variant}: {fields}") from None
        if self.grpo.decode_steps is not None and self.grpo.merge_tau > self.grpo.decode_steps:
            raise ValueError(f"rl.grpo.merge_tau={self.grpo.merge_tau} exceeds decode_steps={self.grpo.decode_steps}")
        return self


class LaunchParams(_Section):
    """How the sft and rl stages start: under `accelerate launch` (stages/_common.py), one process per device.

    A step's global batch is processes x batch_size x grad_accum samples: 2 processes with grad_accum 1 train
    the same weights as 1 process with grad_accum 2."""

    processes: int | Literal["auto"] = Field("auto", description="processes of the training stages; auto: every "
                                             "visible GPU, 1 on a machine without one")
    config_file: str = Field("", description="an accelerate config file (infra/accelerate/*.yaml: multi-GPU, "
                             "multi-node) whose settings the launch uses; '' = none")
    threads_per_process: int = Field(0, ge=0, description="CPU threads of each process (OMP_NUM_THREADS); "
                                     "0 = OMP_NUM_THREADS when set, else the machine's cores / processes")

    @model_validator(mode="after")
    def _check(self) -> "LaunchParams":
        if isinstance(self.processes, int) and self.processes < 1:
            raise ValueError(f"launch.processes={self.processes}: at least 1 (or auto)")
        return self
