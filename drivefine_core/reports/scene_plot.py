"""Top-down drawing of a scene from its metric cache, with trajectories over it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written by headless stages
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Polygon as PolygonPatch  # noqa: E402

from drivefine_core.metrics.cache import MetricCache  # noqa: E402

STYLE = {"planned": ("#d62728", "-"), "human": ("#2ca02c", "--"), "pdm_closed": ("#1f77b4", ":")}


def _box_corners(x: float, y: float, h: float, length: float, width: float) -> np.ndarray:
    c, s = np.cos(h), np.sin(h)
    local = np.array([[length, width], [length, -width], [-length, -width], [-length, width]]) / 2
    return np.array([x, y]) + local @ np.array([[c, s], [-s, c]])


def draw_scene(cache: MetricCache, trajectories: dict[str, np.ndarray], path: str | Path,
               title: str = "", view_m: float = 45.0) -> Path:
    """Draw the drivable area, lanes, route, agents at t=0 and the given ego-frame trajectories.

    trajectories: name -> (T, >=2) ego-frame poses; names in STYLE get fixed colours.
    """
    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    for p in range(len(cache.drivable_ids)):
        ax.add_patch(PolygonPatch(cache.drivable_polygon(p), closed=True, fc="#d9d9d9", ec="none", zorder=0))
    for p in range(len(cache.lane_ids)):
        color = "#9ecae1" if cache.lane_on_route[p] else "#bdbdbd"
        ax.add_patch(PolygonPatch(cache.lane_polygon(p), closed=True, fc="none", ec=color, lw=0.6, zorder=1))
    for i, lane in enumerate(cache.light_lane_index):
        if cache.light_red[i, 0]:
            ax.add_patch(PolygonPatch(cache.lane_polygon(int(lane)), closed=True, fc="#ff9896", ec="none",
                                      alpha=0.6, zorder=1))
    ax.plot(*cache.centerline.T, color="#6baed6", lw=1, ls="-.", zorder=2, label="route centerline")
    for n in range(cache.num_agents):
        if not cache.agent_valid[n, 0]:
            continue
        x, y, h, length, width = cache.agent_boxes[n, 0]
        color = "#ff7f0e" if cache.agent_names[n] == "vehicle" else "#8c564b"
        ax.add_patch(PolygonPatch(_box_corners(x, y, h, length, width), closed=True, fc=color, alpha=0.8, zorder=3))
    ax.add_patch(PolygonPatch(_box_corners(1.461, 0.0, 0.0, 5.176, 2.297), closed=True, fc="black", zorder=4))
    for name, poses in trajectories.items():
        color, ls = STYLE.get(name, (None, "-"))
        pts = np.vstack([[0.0, 0.0], np.asarray(poses)[:, :2]])
        ax.plot(pts[:, 0], pts[:, 1], color=color, ls=ls, lw=2, marker="o", ms=3, zorder=5, label=name)
    ax.set_xlim(-view_m * 0.3, view_m * 1.4)
    ax.set_ylim(-view_m * 0.85, view_m * 0.85)
    ax.set_aspect("equal")
    ax.set_xlabel("x forward [m]")
    ax.set_ylabel("y left [m]")
    ax.set_title(title or cache.token, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write the PNG under a temp name, then rename: a reader never sees half a picture."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def draw_curves(curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "training curves") -> Path:
    """One line per named curve (step, value)."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, points in sorted(curves.items()):
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=name, lw=1.2)
    ax.set_xlabel("step")
    if all(v > 0 for points in curves.values() for _, v in points):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)
