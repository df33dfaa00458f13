"""Traffic-light states of every signalised lane connector over time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivefine_core.data.synthetic.map_types import ALL_RED_S, GREEN_S, PHASES, YELLOW_S, SyntheticMap, cycle_length_s

GREEN, YELLOW, RED = 0, 1, 2


@dataclass
class LightTable:
    connector_ids: list[str]
    index: dict[str, int]  # connector id -> column
    intersection_of: list[str]
    phase_of: np.ndarray  # (n,) index into PHASES of the phase that gives the connector green
    offsets: np.ndarray  # (n,) cycle offset of its junction, s


def light_table(smap: SyntheticMap) -> LightTable:
    ids, inter, phase, offs = [], [], [], []
    for plan in smap.signals.values():
        for p, conns in plan.groups.items():
            for c in conns:
                ids.append(c)
                inter.append(plan.intersection_id)
                phase.append(PHASES.index(p))
                offs.append(plan.offset_s)
    return LightTable(ids, {c: i for i, c in enumerate(ids)}, inter, np.array(phase, int), np.array(offs, float))


def _phase_bounds() -> np.ndarray:
    """(len(PHASES), 3) start of green, start of yellow, start of all-red within the cycle."""
    out, t = [], 0.0
    for p in PHASES:
        g = GREEN_S[p.split("_")[1]]
        out.append((t, t + g, t + g + YELLOW_S))
        t += g + YELLOW_S + ALL_RED_S
    return np.array(out)


def states(table: LightTable, times_s: np.ndarray) -> np.ndarray:
    """(T, n) int8 GREEN / YELLOW / RED."""
    bounds = _phase_bounds()[table.phase_of]  # (n, 3)
    t = (times_s[:, None] + table.offsets[None, :]) % cycle_length_s()
    out = np.full(t.shape, RED, np.int8)
    out[(t >= bounds[:, 0]) & (t < bounds[:, 1])] = GREEN
    out[(t >= bounds[:, 1]) & (t < bounds[:, 2])] = YELLOW
    return out


def walk_signal(plan_offset: float, walk_phase: str, times_s: np.ndarray, window_s: float = 4.0) -> np.ndarray:
    """(T,) bool: pedestrians may start crossing (the first seconds of the parallel straight green)."""
    start = _phase_bounds()[PHASES.index(walk_phase), 0]
    t = (times_s + plan_offset) % cycle_length_s()
    return (t >= start) & (t < start + window_s)
