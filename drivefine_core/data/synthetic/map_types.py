"""What the generator knows about its map beyond the RoadNetwork (signals, crosswalks, kerbs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drivefine_core.data.road_network import RoadNetwork

# Signal phases of a junction, in cycle order; "straight" movements include right turns.
PHASES = ("A_straight", "A_left", "B_straight", "B_left")
GREEN_S = {"straight": 15.0, "left": 6.0}
YELLOW_S = 2.5
ALL_RED_S = 1.0

STOP_SETBACK_M = 6.5  # stop line distance before the lane end (crosswalk between stop line and junction)
CROSSWALK_SPAN_M = (1.0, 4.5)  # crosswalk band, distance before the lane end


@dataclass
class SignalPlan:
    intersection_id: str
    offset_s: float  # cycle time at t = 0
    groups: dict[str, list[str]]  # phase -> lane connector ids that are green in it


@dataclass
class CrosswalkPath:
    crosswalk_id: str
    start: np.ndarray  # (2,) kerb point on one side
    end: np.ndarray  # (2,) kerb point on the other side
    intersection_id: str
    walk_phase: str  # the phase during which pedestrians start crossing


@dataclass
class SyntheticMap:
    network: RoadNetwork
    signals: dict[str, SignalPlan] = field(default_factory=dict)
    crosswalk_paths: list[CrosswalkPath] = field(default_factory=list)
    shoulders: list[np.ndarray] = field(default_factory=list)  # polylines just outside the road edge
    sidewalks: list[np.ndarray] = field(default_factory=list)  # polylines along the walkways
    walkways: dict[str, np.ndarray] = field(default_factory=dict)  # id -> polygon
    stop_setback_m: float = STOP_SETBACK_M
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # xmin, ymin, xmax, ymax


def cycle_length_s() -> float:
    return sum(GREEN_S[p.split("_")[1]] + YELLOW_S + ALL_RED_S for p in PHASES)


def phase_state(t: float) -> tuple[str, str]:
    """(phase, 'green' | 'yellow' | 'red_clear') at cycle time t."""
    t = t % cycle_length_s()
    for p in PHASES:
        g = GREEN_S[p.split("_")[1]]
        if t < g:
            return p, "green"
        if t < g + YELLOW_S:
            return p, "yellow"
        if t < g + YELLOW_S + ALL_RED_S:
            return p, "red_clear"
        t -= g + YELLOW_S + ALL_RED_S
    raise AssertionError("unreachable")
