"""Knobs of the planners. Small by default (CPU, tests); every size grows by configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivefine_core.features.tokenizer import VOCAB_SIZE
from drivefine_core.params_base import Section

NUM_ANSWER_TOKENS = 24
NUM_POSES = 8
NUM_HISTORY_POSES = 4


class ModelParams(Section):
    """Sizes and decoding settings shared by the DriveFine (MDM) and SpanVLA (AR + flow) planners."""

    # backbone (shared shape for the masked-diffusion LM and the autoregressive LM)
    width: int = Field(128, ge=8)
    depth: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    # DriveFine block-MoE: the last n blocks are duplicated into the refinement expert
    n_refine_blocks: int = Field(1, ge=0)

    # vision tower (a from-scratch ViT; patches of every view, shared weights + a view embedding)
    image_height: int = Field(64, ge=8)
    image_width: int = Field(128, ge=8)
    patch_size: int = Field(16, ge=2)
    num_views: int = Field(1, ge=1)
    vision_width: int = Field(96, ge=8)
    vision_depth: int = Field(2, ge=0)
    vision_heads: int = Field(4, ge=1)
    # "conv": a strided-convolution stem before the ViT blocks (learns from a few thousand images, where a
    # single 16x16 patch projection does not); "patch": the plain ViT patch embedding
    vision_stem: Literal["conv", "patch"] = "conv"
    # auxiliary BEV head on the vision tokens (drivable area, route, vehicles; TransFuser-style), trained in SFT
    bev_channels: int = Field(3, ge=1)
    bev_cells: tuple[int, int] = (32, 32)  # (forward, lateral) cells; must be even (2x2 cells per query)
    bev_cell_m: float = Field(2.0, gt=0)
    # + this weight x the per-channel soft Dice loss (models/bev.py); 0: BCE alone, under which the vehicle
    # channel is learned as all zeros (docs/ladder-history.md)
    bev_dice_weight: float = Field(0.0, ge=0)
    # a vehicle's cell is set when its box covers at least this fraction of it (drivable area and route: half)
    bev_agent_min_cover: float = Field(0.5, gt=0, le=1)

    # SpanVLA flow-matching action expert: same head count as the backbone, smaller width
    flow_width: int = Field(64, ge=8)
    flow_depth: int | None = Field(None, ge=1, description="None: one expert layer per read backbone layer")
    flow_every_k: int = Field(2, ge=1, description="read the KV of every k-th backbone layer")
    flow_steps: int = Field(5, ge=0)
    # tau = sigmoid(N(mu, sigma)) in training. mu -1: the first Euler step runs at tau = 0, where N(0, 1) puts 1.4%
    # of the training taus below 0.1 and N(-1, 1) 11.5% (validation: docs/ladder-history.md)
    flow_tau_mu: float = -1.0
    flow_tau_sigma: float = Field(1.0, gt=0)
    # noise on a_his in training, normalised units (0.01 = 0.3 m in x with the default scales)
    flow_train_noise: float = Field(0.01, ge=0)
    flow_sample_noise: float = Field(0.1, ge=0)  # initial-state noise of stochastic sampling (GRPO exploration)
    flow_noise_steps: int = Field(10, ge=0, description="Euler steps of the noise-initialised (pi0) ablation")
    # pi0's state token: ego velocity, acceleration and command as one more token of the expert's own sequence
    # (off here so that planners saved before it existed load as they were; params.yaml turns it on)
    flow_state_token: bool = False

    # masked diffusion (DriveFine generation expert)
    mdm_steps: int = Field(12, ge=1, le=NUM_ANSWER_TOKENS)
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    remasking: Literal["confidence", "random"] = "confidence"
    complementary_masking: bool = True  # LaViDa
    inverse_t_weighting: bool = False  # LLaDA's 1/t weight
    # SFT drafts for the refinement expert: perturbed targets ("noise") or the generation expert's decode
    refine_draft: Literal["noise", "decode"] = "decode"
    refine_noise_bins: float = Field(20.0, ge=0)  # std of the draft perturbation in bins (20 = 1 m, 2 deg)
    # "decode" drafts are sampled at this temperature (0 = greedy): the training split's greedy drafts are
    # better than the test split's, sampling shows the refiner mistakes of the size it will meet
    refine_draft_temperature: float = Field(0.3, ge=0)
    refine_draft_steps: int | None = Field(None, ge=1, le=NUM_ANSWER_TOKENS,
                                           description="decoding steps of SFT drafts (None: mdm_steps)")
    # x/y positions may only emit x/y bins, heading positions only heading bins
    constrain_vocab: bool = True
    # trajectory tokens with a notion of "near" (token_codec.py): value embeddings of the bins, Gaussian
    # soft labels (sigma in bins; 0 = one-hot) and windowed decoding (+-W bins around the argmax; 0 = argmax)
    token_embedding: Literal["value", "table"] = "value"
    value_frequencies: int = Field(12, ge=1)
    label_sigma_bins: float = Field(10.0, ge=0)
    decode_window_bins: int = Field(20, ge=0)
    # the refinement expert predicts each token's offset from the draft within +-R bins (R = 0: whole tokens)
    refine_offset_bins: int = Field(80, ge=0)
    # greedy refinement adds this to the "keep the draft" logit (offset 0; with refine_offset_bins > 0): the
    # expert then moves a token only where it is confident, instead of nudging every pose (which costs comfort)
    refine_keep_bias: float = Field(0.0, ge=0)

    # fixed normalisation scales
    action_scale: tuple[float, float, float] = (30.0, 10.0, 0.5)  # x m, y m, heading rad
    velocity_scale: float = Field(10.0, gt=0)
    acceleration_scale: float = Field(3.0, gt=0)

    vocab_size: int = VOCAB_SIZE

    @model_validator(mode="after")
    def _check(self) -> "ModelParams":
        if self.width % self.heads:
            raise ValueError(f"ModelParams.width={self.width} must be divisible by heads={self.heads}")
        if self.vision_width % self.vision_heads:
            raise ValueError(
                f"ModelParams.vision_width={self.vision_width} must be divisible by vision_heads={self.vision_heads}"
            )
        if self.n_refine_blocks > self.depth:
            raise ValueError(f"ModelParams.n_refine_blocks={self.n_refine_blocks} exceeds depth={self.depth}")
        if self.image_height % self.patch_size or self.image_width % self.patch_size:
            raise ValueError(
                f"ModelParams.image_height/image_width ({self.image_height}x{self.image_width}) "
                f"must be multiples of patch_size={self.patch_size}"
            )
        if any(c % 2 for c in self.bev_cells):
            raise ValueError(f"ModelParams.bev_cells={self.bev_cells} must both be even")
        n_read = len(self.flow_read_layers)
        if n_read == 0:
            raise ValueError(f"ModelParams.flow_every_k={self.flow_every_k} reads no layer of depth={self.depth}")
        if self.flow_depth is not None and self.flow_depth > n_read:
            raise ValueError(f"ModelParams.flow_depth={self.flow_depth} exceeds the {n_read} backbone layers read")
        return self

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def num_patches(self) -> int:
        return (self.image_height // self.patch_size) * (self.image_width // self.patch_size)

    @property
    def flow_read_layers(self) -> list[int]:
        """Backbone layers whose KV the flow expert reads: every k-th, counted from 1 (k=2: 1, 3, 5, ...)."""
        return list(range(self.flow_every_k - 1, self.depth, self.flow_every_k))

    @property
    def flow_layers(self) -> int:
        return self.flow_depth if self.flow_depth is not None else len(self.flow_read_layers)
