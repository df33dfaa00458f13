"""Where traffic lights are drawn: a coloured band on each signalised stop line and a signal head across
the junction (where a camera waiting at the line can still see it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivefine_core.data.synthetic.lights import LightTable
from drivefine_core.data.synthetic.map_types import SyntheticMap

HEAD_DISTANCE_M = 36.0  # from the stop line, along the approach: the far side of a junction
HEAD_HEIGHT_M = 4.6
HEAD_DIMS = (0.6, 0.6, 1.2)


@dataclass
class SignalGlyphs:
    boxes: np.ndarray  # (G, 7) global frame [x, y, z, l, w, h, yaw]
    light: np.ndarray  # (G,) light column whose state colours the glyph


def signal_glyphs(smap: SyntheticMap, lights: LightTable) -> SignalGlyphs:
    net = smap.network
    by_stop: dict[str, dict[int, int]] = {}  # stop polygon -> phase -> light column
    for col, conn in enumerate(lights.connector_ids):
        for sid in net.lane_connectors[conn].traffic_light_stop_line_ids:
            by_stop.setdefault(sid, {}).setdefault(int(lights.phase_of[col]), col)
    boxes, cols = [], []
    for sid, phases in by_stop.items():
        poly = net.stop_polygons[sid][1][:4]
        centre = poly.mean(axis=0)
        along = poly[0] - poly[1]
        along /= np.linalg.norm(along)
        yaw = float(np.arctan2(along[1], along[0]))
        left = np.array([-along[1], along[0]])
        width = float(np.linalg.norm(poly[1] - poly[2]))
        ordered = sorted(phases.items())  # straight phases before left phases (PHASES order)
        for k, (_, col) in enumerate(ordered):
            band_w = width / len(ordered)
            offset = -width / 2 + band_w * (k + 0.5)  # straight on the right, left-turn arrow on the left
            c = centre + left * offset
            boxes.append([c[0], c[1], 0.03, 1.5, band_w, 0.06, yaw])
            cols.append(col)
            head = centre + along * HEAD_DISTANCE_M + left * (0.8 * k)
            boxes.append([head[0], head[1], HEAD_HEIGHT_M, *HEAD_DIMS, yaw])
            cols.append(col)
    return SignalGlyphs(np.array(boxes, float).reshape(-1, 7), np.array(cols, int))
