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
from tests.metrics.toy_random import random_candidates


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(root, log) of one generated log, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("world")
    params = GenerateParams(num_logs=1, frames_per_log=32, render_images=False, grid_nodes_x=3, grid_nodes_y=2,
                            splits={"test": 1.0}, seed=0)
    name = generate_world(root, params).logs["test"][0]
    return root, load_log(str(root / "navsim_logs" / "test" / f"{name}.pkl"), require_annotations=True, required_cameras=())


@pytest.fixture(scope="module")
def world_caches(world):
    root, log = world
    api = load_map_api(root / "maps", log.map_location)
    return [build_metric_cache(scene, api) for scene in cut_scenes(log.frames, SceneFilter(frame_interval=3), log.log_name,
                                                                   log.map_location)[:6]]


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


def test_cache_stage_writes_per_log_and_skips_existing(world, tmp_path):
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.metrics.cache_stage import build_metric_cache_dir

    root, log = world
    name = log.log_name
    scenes = cut_scenes(log.frames, SceneFilter(frame_interval=6), log.log_name, log.map_location)
    scenes[1].frames[scenes[1].current_index].roadblock_ids = []  # one bad scene: reported, the rest go on
    report = build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    assert report.logs_written == [name] and len(report.failures) == 1 and "roadblock_ids" in report.failures[0]["error"]
    assert len(read_metric_caches(tmp_path / "cache")) == len(scenes) - 1 == report.scenes
    again = build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    assert again.logs_skipped == [name] and again.scenes == 0


def test_cache_stage_rebuilds_a_log_whose_scenes_changed_and_drops_removed_logs(world, tmp_path):
    from drivefine_core.metrics.cache_stage import build_metric_cache_dir

    root, log = world
    scenes = cut_scenes(log.frames, SceneFilter(frame_interval=6), log.log_name, log.map_location)
    build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    scenes[0].frames[0].ego.pose = scenes[0].frames[0].ego.pose + np.array([0.5, 0.0, 0.0])  # new content
    again = build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    assert again.logs_written == [log.log_name] and again.logs_skipped == []
    gone = build_metric_cache_dir([], root / "maps", tmp_path / "cache")
    assert gone.logs_removed == [log.log_name] and not (tmp_path / "cache" / f"{log.log_name}.parquet").exists()


def test_cache_stage_rebuilds_every_log_when_the_rules_change(world, tmp_path, monkeypatch):
    """Caches built by earlier rules (RULES_VERSION) are rebuilt, not reused, though scenes and params match."""
    from drivefine_core.metrics import cache_stage

    root, log = world
    scenes = cut_scenes(log.frames, SceneFilter(frame_interval=12), log.log_name, log.map_location)
    cache_stage.build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    monkeypatch.setattr(cache_stage, "RULES_VERSION", cache_stage.RULES_VERSION + "-next")
    again = cache_stage.build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache")
    assert again.logs_written == [log.log_name] and again.logs_skipped == []


def test_navhard_on_generated_perturbed_starts(world):
    from drivefine_core.data.synthetic.navhard import perturbed_starts
    from drivefine_core.data.synthetic.params import NavhardStartParams
    from drivefine_core.metrics.baselines import human_agent
    from drivefine_core.metrics.navhard import NavhardGroup, score_navhard
    from drivefine_core.metrics.navhard_scenes import synthetic_scene

    root, log = world
    api = load_map_api(root / "maps", log.map_location)
    scenes = {s.token: s for s in cut_scenes(log.frames, SceneFilter(frame_interval=1), log.log_name, log.map_location)}
    now, prev = 8, 7  # current frame indices of the stage-1 scenes
    groups_syn = []
    for cur in (now, prev):
        starts = perturbed_starts(log.frames, cur, NavhardStartParams(num_starts=3))
        syn = [build_metric_cache(synthetic_scene(log.frames, s, log.log_name, log.map_location), api, is_synthetic=True) for s in starts]
        # The moved ego sits at the perturbed start: objects keep their world positions.
        assert all(np.allclose(c.origin, s.pose) for c, s in zip(syn, starts))
        groups_syn.append(syn)
    stage1 = [build_metric_cache(scenes[log.frames[i].token], api) for i in (now, prev)]
    group = NavhardGroup(stage1[0], groups_syn[0], stage1[1], groups_syn[1])
    score, table = score_navhard([group], human_agent)
    assert 0.0 <= score <= 1.0 and np.isfinite(table.loc[0, "s2_now"]) and np.isfinite(table.loc[0, "s2_prev"])
    assert score == pytest.approx(0.5 * (table.loc[0, "s1_now"] * table.loc[0, "s2_now"] + table.loc[0, "s1_prev"] * table.loc[0, "s2_prev"]))


def test_cache_stage_that_builds_nothing_fails_and_keeps_the_previous_caches(world, tmp_path):
    """A map missing its `lanes_polygons` layer fails every scene: the stage fails, the caches stay (issue 13)."""
    import shutil
    import sqlite3

    from drivefine_core.metrics.cache_stage import NothingBuiltError, build_metric_cache_dir

    root, log = world
    scenes = cut_scenes(log.frames, SceneFilter(frame_interval=6), log.log_name, log.map_location)
    build_metric_cache_dir(scenes, root / "maps", tmp_path / "cache", maps_digest="good")
    before = {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()}
    broken = tmp_path / "maps"
    shutil.copytree(root / "maps", broken)
    for gpkg in broken.rglob("*.gpkg"):
        with sqlite3.connect(gpkg) as db:
            db.execute("DROP TABLE lanes_polygons")
            db.execute("DELETE FROM gpkg_contents WHERE table_name = 'lanes_polygons'")
            db.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = 'lanes_polygons'")
    with pytest.raises(NothingBuiltError, match="built nothing from 1 log.*lanes_polygons"):
        build_metric_cache_dir(scenes, broken, tmp_path / "cache", maps_digest="broken")
    assert {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()} == before


def test_navhard_groups_from_the_split_scenes(world):
    """Scenes cut every frame: each group has its EC pair (frame i - 1) and starts 8 frames (4 s) later;
    cut every 4 frames: no pair, the "now" term only. The stage-2 starts come from the stitched log frames."""
    from drivefine_core.metrics.navhard_groups import build_groups
    from drivefine_core.metrics.params import NavhardParams

    _, log = world
    frame_of = {f.token: i for i, f in enumerate(log.frames)}
    every = cut_scenes(log.frames, SceneFilter(frame_interval=1), log.log_name, log.map_location)
    synthetic, groups = build_groups(every, NavhardParams(max_groups=3, num_starts=2))
    # The log's first scene has no frame before it; every later one is paired.
    paired = [g for g in groups if g.prev is not None]
    assert len(groups) == 3 and len(paired) >= 2 and len(synthetic) == 2 * (len(groups) + len(paired))
    by_token = {s.token: s for s in synthetic}
    for g in groups:
        assert g.prev is None or frame_of[g.prev] == frame_of[g.original] - 1
        start = by_token[g.synthetic_now[0]]
        assert start.current_frame.timestamp_us == log.frames[frame_of[g.original] + 8].timestamp_us
    sparse = cut_scenes(log.frames, SceneFilter(frame_interval=4), log.log_name, log.map_location)
    _, groups = build_groups(sparse, NavhardParams(max_groups=2, num_starts=1))
    assert groups and all(g.prev is None and g.synthetic_prev == [] for g in groups)


@pytest.fixture(scope="module")
def dense_cache_dir(tmp_path_factory):
    """(cache dir, scenes, maps) of a busy generated log, cached by the metric_cache stage's code."""
    from drivefine_core.metrics.cache_stage import build_metric_cache_dir

    root = tmp_path_factory.mktemp("dense")
    params = GenerateParams(num_logs=1, frames_per_log=24, render_images=False, grid_nodes_x=3, grid_nodes_y=2,
                            splits={"test": 1.0}, seed=3, vehicle_density_per_100m=3.0,
                            sidewalk_pedestrians_per_100m=1.5, static_objects_per_100m=1.8)
    name = generate_world(root, params).logs["test"][0]
    log = load_log(str(root / "navsim_logs" / "test" / f"{name}.pkl"), require_annotations=True, required_cameras=())
    scenes = cut_scenes(log.frames, SceneFilter(frame_interval=3), log.log_name, log.map_location)
    report = build_metric_cache_dir(scenes, root / "maps", root / "cache")
    assert report.scenes == len(scenes) >= 4 and not report.failures
    return root / "cache", scenes, root / "maps"


def _ram(cache) -> np.ndarray:
    """(8, 3) a plan that reaches, at 2 s, where the nearest agent observed then is, and stops there."""
    seen = np.flatnonzero(cache.agent_valid[:, 20])
    at = cache.agent_boxes[seen, 20, :2]
    target = at[np.argmin(np.linalg.norm(at, axis=1))]
    k = np.minimum(np.arange(1, 9), 4)[:, None] / 4.0
    return np.concatenate([k * target, np.full((8, 1), np.arctan2(target[1], target[0]))], axis=1)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_fast_equals_reference_on_cached_dense_scenes(dense_cache_dir):
    """Caches as the stages read them (the scorer's tables precomputed by the metric_cache stage): every
    sub-score of every candidate equals the plain reference scorer's; caches built in memory (tables built
    while scoring) give the very same numbers."""
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.metrics.scene_index import TABLES, scene_index

    path, scenes, maps = dense_cache_dir
    caches = read_metric_caches(path)
    # the scene index tables are installed as read; the reference / human rows are ready
    assert all(c.recalled(TABLES) is not None and c.recalled("fixed_rows") is not None for c in caches)
    # kept compact (dense int64 grids took ~6 MB a scene) and read as stored: the index wraps, never copies
    assert max(sum(a.nbytes for a in c.recalled(TABLES).values()) for c in caches) < 1_000_000
    assert scene_index(caches[0]).polygons.edges is caches[0].recalled(TABLES)["polygons.edges"]
    assert np.mean([c.num_agents for c in caches]) > 10
    rng = np.random.default_rng(11)
    plans = np.concatenate([np.stack([random_candidates(rng, c, 5) for c in caches]),
                            np.stack([np.nan_to_num(c.human_future) for c in caches])[:, None],
                            np.stack([_ram(c) for c in caches])[:, None]], axis=1)
    fast = score_trajectories(caches, plans, "both")
    checked = 0
    for i, c in enumerate(caches):
        for g in range(plans.shape[1]):
            for version in ("v1", "v2"):
                for key, value in reference_score(c, plans[i, g], version).items():
                    got = fast[key][i, g]
                    assert (np.isnan(got) if np.isnan(value) else abs(got - value) <= 1e-6), (key, i, g, got, value)
                    checked += 1
    assert checked > 300 and fast["v1/nc"].min() < 1.0 and fast["v2/ttc"].min() < 1.0  # not all trivial
    api = load_map_api(maps, scenes[0].map_location)
    in_memory = [build_metric_cache(s, api) for s in scenes]
    for c in in_memory:
        c.invalidate()  # nothing kept: grids and reference rows are built by the scorer
    _assert_same(score_trajectories(in_memory, plans, "both"), fast)


def test_cache_file_carries_the_scorer_tables_and_an_older_file_still_scores(dense_cache_dir, tmp_path):
    import pyarrow.parquet as pq

    from drivefine_core.metrics.cache_io import read_metric_caches

    path, _, _ = dense_cache_dir
    (file,) = sorted(path.glob("*.parquet"))
    table = pq.read_table(file)
    assert table.schema.metadata[b"drivefine_metric_cache"] == b"4"
    pre = [n for n in table.column_names if n.startswith("pre.")]
    assert "pre.fixed_rows" in pre and "pre.drivable.edges" in pre and "pre.agents" in pre
    old = table.drop_columns(pre).replace_schema_metadata({b"drivefine_metric_cache": b"1"})
    pq.write_table(old, tmp_path / file.name)
    older, current = read_metric_caches(tmp_path), read_metric_caches(path)
    assert all(c.recalled("index") is None for c in older)
    plans = np.stack([random_candidates(np.random.default_rng(2), c, 3) for c in current])
    _assert_same(score_trajectories(older, plans), score_trajectories(current, plans))
    # formats 2 and 3 held the tables in older layouts: refused, naming the file
    for version in ("2", "3"):
        pq.write_table(table.replace_schema_metadata({b"drivefine_metric_cache": version.encode()}), tmp_path / file.name)
        with pytest.raises(ValueError, match=f"{file.name}: metric cache format {version}.*metric_cache stage"):
            read_metric_caches(tmp_path)


def test_reading_without_the_scorer_tables_keeps_every_field_and_score(dense_cache_dir):
    """scorer_tables=False (the SFT stage's BEV targets, the ego-MLP's fit) reads the same fields and no
    precomputed table; scoring such a cache builds its tables and gives the very same numbers."""
    from drivefine_core.metrics.cache_io import read_metric_caches
    from drivefine_core.metrics.scene_index import TABLES
    from tests.metrics.cache_compare import assert_same_cache

    path, _, _ = dense_cache_dir
    full, bare = read_metric_caches(path), read_metric_caches(path, scorer_tables=False)
    assert [c.token for c in bare] == [c.token for c in full]
    assert all(c.recalled(TABLES) is None and c.recalled("fixed_rows") is None for c in bare)
    for a, b in zip(full, bare):
        assert_same_cache(a, b)
    plans = np.stack([random_candidates(np.random.default_rng(4), c, 3) for c in full])
    _assert_same(score_trajectories(bare, plans, "both"), score_trajectories(full, plans, "both"))
