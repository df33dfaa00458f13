"""The planners: DriveFine (masked diffusion + block-MoE refinement) and SpanVLA (AR + flow-matching expert).

`Planner` (planner.py) is the contract and the entry point (Planner.build(family), Planner.load(dir)); each
family's planner (drivefine_planner.py, spanvla_planner.py) holds only its own models; the families and their
modes are listed once, in modes.py. The model files read top to bottom on their own.
The names below load on first use, so that validating params.yaml (models/params.py) imports no torch.
"""

from typing import TYPE_CHECKING

from drivefine_core._lazy import lazy_exports

if TYPE_CHECKING:
    from drivefine_core.models.autoregressive import AutoregressiveModel
    from drivefine_core.models.batch import PlannerBatch, check_batch, repeat_batch
    from drivefine_core.models.drivefine import DecodeOutput, DecodeTrace, DriveFineModel
    from drivefine_core.models.flow import FlowPolicy, history_extrapolation
    from drivefine_core.models.params import ModelParams
    from drivefine_core.models.drivefine_planner import DriveFinePlanner
    from drivefine_core.models.modes import FAMILIES, MODES
    from drivefine_core.models.planner import Planner, PlanOutput
    from drivefine_core.models.spanvla_planner import SpanVLAPlanner
    from drivefine_core.models.schedules import cosine_commit_counts

_EXPORTS = {
    "AutoregressiveModel": "drivefine_core.models.autoregressive",
    "PlannerBatch": "drivefine_core.models.batch",
    "check_batch": "drivefine_core.models.batch",
    "repeat_batch": "drivefine_core.models.batch",
    "DecodeOutput": "drivefine_core.models.drivefine",
    "DecodeTrace": "drivefine_core.models.drivefine",
    "DriveFineModel": "drivefine_core.models.drivefine",
    "FlowPolicy": "drivefine_core.models.flow",
    "history_extrapolation": "drivefine_core.models.flow",
    "ModelParams": "drivefine_core.models.params",
    "DriveFinePlanner": "drivefine_core.models.drivefine_planner",
    "SpanVLAPlanner": "drivefine_core.models.spanvla_planner",
    "FAMILIES": "drivefine_core.models.modes",
    "MODES": "drivefine_core.models.modes",
    "Planner": "drivefine_core.models.planner",
    "PlanOutput": "drivefine_core.models.planner",
    "cosine_commit_counts": "drivefine_core.models.schedules",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
