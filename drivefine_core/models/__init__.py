"""The planners: DriveFine (masked diffusion + block-MoE refinement) and SpanVLA (AR + flow-matching expert).

`Planner` (planner.py) is the entry point; the model files read top to bottom on their own.
"""

from drivefine_core.models.autoregressive import AutoregressiveModel
from drivefine_core.models.batch import check_batch, repeat_batch
from drivefine_core.models.drivefine import DecodeOutput, DecodeTrace, DriveFineModel
from drivefine_core.models.flow import FlowPolicy, history_extrapolation
from drivefine_core.models.params import ModelParams
from drivefine_core.models.planner import LOSSES, MODES, Planner, PlanOutput
from drivefine_core.models.schedules import cosine_commit_counts

__all__ = [
    "AutoregressiveModel", "DecodeOutput", "DecodeTrace", "DriveFineModel", "FlowPolicy", "LOSSES", "MODES",
    "ModelParams", "PlanOutput", "Planner", "check_batch", "cosine_commit_counts", "history_extrapolation",
    "repeat_batch",
]
