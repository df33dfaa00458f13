"""Metric caches built from the synthetic world generator: logged humans score well, fast == plain."""

import numpy as np
import pytest

from drivefine_core.data.map_api import load_map_api
from drivefine_core.data.openscene_reader import load_log
from drivefine_core.data.params import SceneFilter
from drivefine_core.data.scene_filter import cut_scenes
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.world import generate_world
from drivefine_core.metrics.cache_builder import build_metric_cache
from drivefine_core.metrics.reference_scorer import reference_score
from drivefine_core.metrics.scorer import score_trajectories
from drivefine_core.metrics.toy_random import random_candidates


@pytest.fixture(scope="module")
def world_caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    params = GenerateParams(num_logs=1, frames_per_log=32, render_images=False, grid_nodes_x=3, grid_nodes_y=2,
                            splits={"test": 1.0}, seed=0)
    summary = generate_world(root, params)
    caches = []
    for name in summary.logs["test"]:
        log = load_log(str(root / "navsim_logs" / "test" / f"{name}.pkl"), require_annotations=True, required_cameras=())
        api = load_map_api(root / "maps", log.map_location)
        for scene in cut_scenes(log.frames, SceneFilter(frame_interval=3), log.log_name, log.map_location)[:6]:
            caches.append(build_metric_cache(scene, api))
    return caches


def test_logged_human_scores_high_on_generated_scenes(world_caches):
    assert len(world_caches) >= 5
    plans = np.stack([c.human_future for c in world_caches])[:, None]
    out = score_trajectories(world_caches, plans)
    assert np.all(out["v1/dac"] == 1.0) and np.all(out["v1/nc"] == 1.0)
    assert out["v1/pdms"].mean() > 0.9 and out["v2/epdms"].mean() > 0.9
    assert all(c.num_agents > 0 and c.lane_on_route.any() for c in world_caches)


def test_fast_matches_plain_on_generated_scenes(world_caches):
    rng = np.random.default_rng(5)
    plans = np.stack([random_candidates(rng, c, 8) for c in world_caches])
    fast = score_trajectories(world_caches, plans, "both")
    for i, c in enumerate(world_caches):
        for g in range(plans.shape[1]):
            for version in ("v1", "v2"):
                for key, value in reference_score(c, plans[i, g], version).items():
                    got = fast[key][i, g]
                    if np.isnan(value):
                        assert np.isnan(got), (key, i, g)
                    else:
                        assert abs(got - value) <= 1e-6, (key, i, g, got, value)


def test_cache_stage_writes_per_log_and_skips_existing(tmp_path):
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.metrics.cache_stage import build_metric_cache_dir

    root = tmp_path / "world"
    params = GenerateParams(num_logs=1, frames_per_log=20, render_images=False, grid_nodes_x=2, grid_nodes_y=2,
                            splits={"test": 1.0}, seed=1)
    summary = generate_world(root, params)
    name = summary.logs["test"][0]
    log = load_log(str(root / "navsim_logs" / "test" / f"{name}.pkl"), require_annotations=True, required_cameras=())
    scenes = cut_scenes(log.frames, SceneFilter(frame_interval=4), log.log_name, log.map_location)
    scenes[1].frames[scenes[1].current_index].roadblock_ids = []  # one bad scene: reported, the rest go on
    report = build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    assert report.logs_written == [name] and len(report.failures) == 1 and "roadblock_ids" in report.failures[0]["error"]
    assert len(read_metric_caches(tmp_path / "cache")) == len(scenes) - 1 == report.scenes
    again = build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    assert again.logs_skipped == [name] and again.scenes == 0
