"""generate_world: maps, logs and camera images of a synthetic NAVSIM-format dataset under one root.

Layout (the real formats):
  <root>/maps/nuplan-maps-v1.0.json, <root>/maps/<location>/<version>/map.gpkg
  <root>/navsim_logs/<split>/<log_name>.pkl
  <root>/sensor_blobs/<split>/<log_name>/<CAM>/<token>.jpg
  <root>/sensor_blobs/<split>/<log_name>/MergedPointCloud/<token>.pcd   (with params.lidar)
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drivefine_core.data.gpkg_writer import write_gpkg
from drivefine_core.data.openscene_writer import write_log
from drivefine_core.data.pcd import write_pcd
from drivefine_core.data.schema import global_to_ego
from drivefine_core.data.synthetic.agents import cast_log
from drivefine_core.data.synthetic.cameras import Camera, rig
from drivefine_core.data.synthetic.lidar import frame_points
from drivefine_core.data.synthetic.lights import LightTable, light_table
from drivefine_core.data.synthetic.log_frames import build_frames
from drivefine_core.data.synthetic.map_gen import generate_map, num_written_maps
from drivefine_core.data.synthetic.map_types import SyntheticMap
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.raster import MapRaster, rasterize
from drivefine_core.data.synthetic.render import CLASS_COLOURS, LIGHT_COLOURS, GroundModel, ground_model, render
from drivefine_core.data.synthetic.routes import Topology
from drivefine_core.data.synthetic.signals_draw import SignalGlyphs, signal_glyphs
from drivefine_core.data.synthetic.simulate import simulate
from drivefine_core.executor.core import Executor, make_executor

MAPS_DIR, LOGS_DIR, BLOBS_DIR = "maps", "navsim_logs", "sensor_blobs"
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
RENDER_RADIUS_M = 150.0


@dataclass
class WorldSummary:
    root: str
    maps: list[str]  # locations written under maps/; logs drive on the first params.num_maps
    logs: dict[str, list[str]]  # split -> log names
    frames: int
    images: int
    seconds: float
    red_light_stops: int = 0  # frames where the ego stands at a red light
    per_split_frames: dict[str, int] = field(default_factory=dict)


@dataclass
class _MapAssets:
    smap: SyntheticMap
    topo: Topology
    lights: LightTable
    raster: MapRaster | None
    glyphs: SignalGlyphs


def log_name(params: GenerateParams, index: int) -> str:
    hh, mm = divmod(index, 60)
    return f"2026.01.01.{hh % 24:02d}.{mm:02d}.00_synthetic-s{params.seed}_{index:05d}"


def assign_splits(params: GenerateParams) -> list[str]:
    """Split of each log index: shares rounded by largest remainder, interleaved so every split gets variety."""
    names = list(params.splits)
    shares = np.array([params.splits[n] for n in names], float)
    exact = shares / shares.sum() * params.num_logs
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts))[: params.num_logs - counts.sum()]:
        counts[i] += 1
    out, used = [], np.zeros(len(names), int)
    for k in range(params.num_logs):  # pick the split that is furthest behind its share
        j = int(np.argmax((counts - used) / np.maximum(counts, 1) + (counts > used) * 10))
        out.append(names[j])
        used[j] += 1
    return out


def _write_jpeg(path: Path, image, quality: int) -> None:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def _render_log(frames: list[dict], sim, cast, assets: _MapAssets, cams: dict[str, Camera],
                models: dict[str, GroundModel], names: list[str], out_dir: Path, quality: int) -> int:
    S = cast.statics
    n = 0
    for d in {str(Path(fr["cams"][c]["data_path"]).parent) for fr in frames[:1] for c in names}:
        (out_dir / d).mkdir(parents=True, exist_ok=True)
    glyph_colour = np.array([LIGHT_COLOURS[k] for k in (0, 1, 2)], float)
    for f, frame in enumerate(frames):
        pose = np.array([sim.ego_xy[f, 0], sim.ego_xy[f, 1], sim.ego_heading[f]])
        act = sim.veh_active[f].copy()
        act[0] = False
        xy = np.concatenate([sim.veh_xy[f][act], sim.ped_xy[f], S.xy, assets.glyphs.boxes[:, :2]])
        yaw = np.concatenate([sim.veh_heading[f][act], sim.ped_heading[f], S.heading, assets.glyphs.boxes[:, 6]])
        dims = np.concatenate([cast.vehicles.dims[act], np.tile([0.6, 0.6, 1.75], (len(sim.ped_xy[f]), 1)), S.dims,
                               assets.glyphs.boxes[:, 3:6]])
        z = np.concatenate([dims[: len(dims) - len(assets.glyphs.boxes), 2] / 2, assets.glyphs.boxes[:, 2]])
        colours = np.concatenate([
            np.tile(CLASS_COLOURS["vehicle"], (int(act.sum()), 1)),
            np.tile(CLASS_COLOURS["pedestrian"], (len(sim.ped_xy[f]), 1)),
            np.array([CLASS_COLOURS[k] for k in S.names], float).reshape(-1, 3),
            glyph_colour[sim.light_states[f][assets.glyphs.light]] if len(assets.glyphs.light) else np.zeros((0, 3)),
        ])
        local = global_to_ego(np.column_stack([xy, yaw]), pose)
        near = np.hypot(local[:, 0], local[:, 1]) < RENDER_RADIUS_M
        boxes = np.column_stack([local[:, :2], z, dims, local[:, 2]])[near]
        for name in names:
            image = render(cams[name], models[name], assets.raster, pose, boxes, colours[near])
            _write_jpeg(out_dir / frame["cams"][name]["data_path"], image, quality)
            n += 1
    return n


def _produce_log(state: dict, k: int) -> tuple[str, str, int, int, int]:
    """One log: simulate, write its pickle and images. `state` (params, maps, rasters, cameras) is the map's
    shared value: inherited by forked workers, put once in Ray's object store."""
    params: GenerateParams = state["params"]
    split = state["splits"][k]
    a: _MapAssets = state["assets"][k % params.num_maps]
    rng = np.random.default_rng([params.seed, 7, k])
    duration = (params.frames_per_log - 1) * 0.5
    cast = cast_log(a.smap, a.topo, params, duration, rng)
    sim = simulate(cast, a.lights, params.frames_per_log, rng)
    name = log_name(params, k)
    frames = build_frames(a.smap, cast, sim, a.lights, state["cams"], name, T0_US + k * 3_600_000_000,
                          params.annotation_radius_m, rng, images=params.cameras if params.render_images else (),
                          exit_margin_m=params.annotation_exit_margin_m, lidar=params.lidar)
    write_log(state["root"], split, name, frames)
    if params.lidar:
        for frame in frames:
            write_pcd(state["root"] / BLOBS_DIR / split / frame["lidar_path"], frame_points(frame))
    images = 0
    if params.render_images:
        images = _render_log(frames, sim, cast, a, state["cams"], state["models"], params.cameras,
                             state["root"] / BLOBS_DIR / split, params.jpeg_quality)
    return split, name, len(frames), images, int(red_light_stop_frames(sim).sum())


def generate_world(root: Path, params: GenerateParams,
                   progress: Callable[[int, int], None] | None = None,
                   executor: Executor | None = None) -> WorldSummary:
    """Write maps, logs (split by log) and images under `root`; `progress(done_logs, total_logs)` after each log.

    Logs run on `executor` (default: params.workers local processes). Deterministic in params: neither the
    number of workers nor the executor changes a byte."""
    start = time.perf_counter()
    root = Path(root)
    assets, written = [], []
    for i in range(num_written_maps(params)):
        smap = generate_map(params, i)
        write_gpkg(smap.network, root / MAPS_DIR, smap.walkways)
        written.append(smap.network.location)
        if i >= params.num_maps:  # written for nuPlan's layout only; no log drives on it
            continue
        lights = light_table(smap)
        raster = rasterize(smap, params.raster_resolution_m) if params.render_images else None
        assets.append(_MapAssets(smap, Topology(smap.network), lights, raster, signal_glyphs(smap, lights)))
    cams = rig(params.image_width, params.image_height)
    models = {c: ground_model(cams[c]) for c in params.cameras} if params.render_images else {}
    state = dict(params=params, splits=assign_splits(params), assets=assets, cams=cams, models=models, root=root)
    logs: dict[str, list[str]] = {s: [] for s in params.splits}
    per_split: dict[str, int] = {s: 0 for s in params.splits}
    totals = np.zeros(3, int)  # frames, images, red-light stop frames
    executor = executor or make_executor(workers=min(params.workers, params.num_logs))
    for done in executor.map(_produce_log, range(params.num_logs), shared=state, total=params.num_logs,
                             desc="synthetic logs", ordered=True, progress=progress or True):
        split, name, n_frames, n_images, red = done.result()  # a failure here is a bug, not bad data: stop
        logs[split].append(name)
        per_split[split] += n_frames
        totals += (n_frames, n_images, red)
    for names in logs.values():
        names.sort()
    return WorldSummary(str(root), written, logs, int(totals[0]), int(totals[1]),
                        time.perf_counter() - start, int(totals[2]), per_split)


def red_light_stop_frames(sim) -> np.ndarray:
    """(F,) bool: the ego stands still, held by a stop line (a red or yellow light) within 12 m."""
    return (sim.ego_speed < 0.2) & (sim.stop_gap[:, 0] < 12.0)
