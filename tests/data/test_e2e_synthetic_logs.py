"""End to end over the world generator's logs and maps: generate_world -> ingest -> scenes Parquet -> MapAPI."""

import json

import numpy as np
import pytest

from drivefine_core.data.ingest import ingest
from drivefine_core.data.map_api import load_map_api
from drivefine_core.data.openscene_reader import load_log
from drivefine_core.data.params import IngestParams, SceneFilter, SplitParams
from drivefine_core.data.scenes_io import read_scenes, read_scenes_with_meta
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.world import generate_world

FRAMES_PER_LOG = 24


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    params = GenerateParams(grid_nodes_x=3, grid_nodes_y=3, num_logs=3, frames_per_log=FRAMES_PER_LOG,
                            render_images=False, seed=5)
    summary = generate_world(root, params)
    # a fourth log: a truncated copy of the first train log, as an interrupted download leaves it
    train_dir = root / "navsim_logs" / "train"
    src = sorted(train_dir.glob("*.pkl"))[0]
    (train_dir / "zz-truncated.pkl").write_bytes(src.read_bytes()[:2000])
    return root, summary


def test_ingest_world(world, tmp_path):
    root, summary = world
    # render_images=False: no camera has an image, so none can be required
    params = IngestParams(scene_filter=SceneFilter(frame_interval=1), split=SplitParams(mode="folder"), required_cameras=[])
    report = ingest(root, sorted(summary.logs), tmp_path / "out", params, progress=False)
    quarantine = json.loads((tmp_path / "out" / "quarantine.json").read_text())
    assert [(q["log"], q["field"]) for q in quarantine] == [("zz-truncated", "<pickle>")]
    assert report.logs_read == sum(len(v) for v in summary.logs.values())
    # stride 1 over 24 frames: 24 - 14 + 1 = 11 windows per log, minus windows whose current frame has no route
    expected = {}
    for split, names in summary.logs.items():
        expected[split] = 0
        for name in names:
            frames = load_log(root / "navsim_logs" / split / f"{name}.pkl", required_cameras=()).frames
            expected[split] += sum(1 for s in range(FRAMES_PER_LOG - 14 + 1) if frames[s + 3].roadblock_ids)
    assert report.scenes_per_split == expected and sum(expected.values()) > 0

    for split, path in report.scene_files.items():
        for scene, meta in read_scenes_with_meta(path):
            assert (meta.split, meta.source_split) == (split, split)
            assert scene.log_name in summary.logs[split] and len(scene.frames) == 14
            assert scene.future_trajectory().shape == (8, 3)


def test_scenes_fit_the_map(world, tmp_path):
    root, summary = world
    report = ingest(root, sorted(summary.logs), tmp_path / "out", IngestParams(required_cameras=[]), progress=False)
    checked = 0
    for path in report.scene_files.values():
        for scene in read_scenes(path):
            api = load_map_api(root / "maps", scene.map_location)
            cur = scene.current_frame
            plan = api.route_plan(cur.roadblock_ids, cur.ego.pose)
            assert plan.complete and len(plan.centerline) >= 2
            # the ego drives on the map and its current lane is on the route
            assert api.on_drivable(np.stack([f.ego.pose[:2] for f in scene.frames])).all()
            under = set(api.lanes_at(cur.ego.pose[None, :2])[0])
            assert under & set(api.route_lane_ids(plan.roadblock_ids))
            # every red light names a lane connector of the map
            assert {lc for lc, _ in cur.traffic_lights} <= set(api.network.lane_connectors)
            checked += 1
    assert checked > 0
