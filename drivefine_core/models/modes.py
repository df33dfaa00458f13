"""The registry of planner families and their modes: the one list that the planners, params validation, the
stages, the report and serving read. Torch-free, so that validating params.yaml stays cheap.

Each family is one paper's planner with its own model class, weights and modes:
  drivefine  masked-diffusion generation expert + block-MoE refinement expert   modes mdm, mdm+refine
  spanvla    autoregressive VLM + history-initialised flow expert              modes ar, flow (+ flow-noise)
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["mdm", "mdm+refine", "ar", "flow", "flow-noise"]
Family = Literal["drivefine", "spanvla"]

MODES: tuple[str, ...] = get_args(Mode)
FAMILIES: tuple[str, ...] = get_args(Family)
FAMILY_OF: dict[str, str] = {"mdm": "drivefine", "mdm+refine": "drivefine", "ar": "spanvla", "flow": "spanvla",
                             "flow-noise": "spanvla"}
ABLATIONS = ("flow-noise",)  # trained and scored beside the papers' methods, never their result
RL_MODE: dict[str, str] = {"drivefine": "mdm+refine", "spanvla": "flow"}  # what each family's RL optimises


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown planner family '{family}' (families: {FAMILIES})")
    return family


def modes_of(family: str, ablations: bool = False) -> tuple[str, ...]:
    check_family(family)
    return tuple(m for m in MODES if FAMILY_OF[m] == family and (ablations or m not in ABLATIONS))
