"""Top-down class raster of a map (the texture the camera renderer samples the ground from)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from drivefine_core.data.synthetic import geometry as geo
from drivefine_core.data.synthetic.map_types import SyntheticMap

GROUND, ROAD, CARPARK, SIDEWALK, WHITE, YELLOW, STOPLINE = range(7)
DASH_M, GAP_M = 3.0, 6.0
MARK_W = 0.15


@dataclass
class MapRaster:
    classes: np.ndarray  # (H, W) uint8, row 0 at ymax
    x0: float
    y1: float  # top edge (ymax)
    res: float

    def lookup(self, xy: np.ndarray) -> np.ndarray:
        col = ((xy[..., 0] - self.x0) / self.res).astype(np.int64)
        row = ((self.y1 - xy[..., 1]) / self.res).astype(np.int64)
        h, w = self.classes.shape
        ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.zeros(xy.shape[:-1], np.uint8)
        out[ok] = self.classes[row[ok], col[ok]]
        return out


def _dashes(line: np.ndarray) -> list[np.ndarray]:
    s = geo.arc_length(line)
    out = []
    for start in np.arange(0.0, s[-1] - DASH_M, DASH_M + GAP_M):
        t = np.linspace(start, start + DASH_M, 4)
        out.append(np.stack([np.interp(t, s, line[:, 0]), np.interp(t, s, line[:, 1])], axis=1))
    return out


def rasterize(smap: SyntheticMap, res: float) -> MapRaster:
    xmin, ymin, xmax, ymax = smap.bounds
    w, h = int(np.ceil((xmax - xmin) / res)), int(np.ceil((ymax - ymin) / res))
    img = Image.new("L", (w, h), GROUND)
    draw = ImageDraw.Draw(img)

    def px(xy: np.ndarray) -> list[tuple[float, float]]:
        return list(zip(((xy[:, 0] - xmin) / res).tolist(), ((ymax - xy[:, 1]) / res).tolist()))

    net = smap.network
    for poly in smap.walkways.values():
        draw.polygon(px(poly), fill=SIDEWALK)
    for group in (net.roadblocks, net.roadblock_connectors, net.intersections):
        for obj in group.values():
            draw.polygon(px(obj.polygon), fill=ROAD)
    for lc in net.lane_connectors.values():
        draw.polygon(px(lc.polygon), fill=ROAD)
    for poly in net.carparks.values():
        draw.polygon(px(poly), fill=CARPARK)
    width_px = max(1, int(round(MARK_W / res)))
    for rb in net.roadblocks.values():
        lanes = sorted((net.lanes[i] for i in rb.lane_ids), key=lambda ln: ln.lane_index)
        for k, lane in enumerate(lanes):
            if k == 0:  # centre line of the road: solid yellow
                draw.line(px(geo.offset(lane.centerline, lane.width / 2 - MARK_W)), fill=YELLOW, width=width_px)
            if k == len(lanes) - 1:  # road edge: solid white
                draw.line(px(geo.offset(lane.centerline, -lane.width / 2 + MARK_W)), fill=WHITE, width=width_px)
            else:  # between lanes of one direction: dashed white
                for dash in _dashes(geo.offset(lane.centerline, -lane.width / 2)):
                    draw.line(px(dash), fill=WHITE, width=width_px)
    for poly in net.crosswalks.values():
        p0, p1, p2 = poly[0], poly[1], poly[2]
        e1, e2 = p1 - p0, p2 - p1
        across, depth, origin = (e2, e1, p0) if np.linalg.norm(e2) > np.linalg.norm(e1) else (e1, e2, p0)
        n = np.linalg.norm(across)
        u = across / n
        for t in np.arange(0.25, n - 0.5, 1.0):
            a = origin + u * t
            draw.polygon(px(np.array([a, a + u * 0.5, a + u * 0.5 + depth, a + depth])), fill=WHITE)
    for _, poly in net.stop_polygons.values():
        draw.polygon(px(poly), fill=STOPLINE)
    return MapRaster(np.asarray(img, np.uint8), xmin, ymax, res)
