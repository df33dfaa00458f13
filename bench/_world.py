"""A small synthetic world and one split's metric caches, built with the stages' code (the scorer and Arrow
memory benches read them back as the evaluate, sft and rl stages do)."""

from __future__ import annotations

from pathlib import Path


def synthetic_caches(root: Path, logs: int, frames: int, density: float = 1.0, split: str = "test") -> Path:
    """Generate a world (no images) under root/world and build `split`'s metric caches in root/cache."""
    from drivefine_core.data.openscene_reader import load_log
    from drivefine_core.data.params import SceneFilter
    from drivefine_core.data.scene_filter import cut_scenes
    from drivefine_core.data.synthetic.params import GenerateParams
    from drivefine_core.data.synthetic.world import generate_world
    from drivefine_core.metrics.cache_stage import build_metric_cache_dir

    params = GenerateParams(num_logs=logs, frames_per_log=frames, render_images=False, seed=0, workers=1,
                            vehicle_density_per_100m=1.0 * density, sidewalk_pedestrians_per_100m=0.5 * density,
                            static_objects_per_100m=0.6 * density, pedestrians_per_crosswalk=1.0 * density)
    world = generate_world(root / "world", params)
    scenes = []
    for name in world.logs[split]:
        log = load_log(str(root / "world" / "navsim_logs" / split / f"{name}.pkl"), require_annotations=True,
                       required_cameras=())
        scenes += cut_scenes(log.frames, SceneFilter(frame_interval=1), log.log_name, log.map_location)
    report = build_metric_cache_dir(scenes, root / "world" / "maps", root / "cache")
    if report.failures or not report.scenes:
        raise SystemExit(f"metric cache failed: {report.failures[:3]}")
    return root / "cache"
