"""generate.lidar: every frame's lidar_path names a written .pcd in the layout nuplan-devkit parses."""

import numpy as np
import pytest

from drivefine_core.data.pcd import FIELDS, pcd_bytes, read_pcd
from drivefine_core.data.safe_pickle import safe_load
from drivefine_core.data.synthetic.cameras import LIDAR2EGO_T
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.world import generate_world


def test_header_is_the_binary_pcd_layout():
    pts = np.arange(12, dtype=np.float32).reshape(2, 6)
    data = pcd_bytes(pts)
    head, body = data.split(b"DATA binary\n")
    lines = dict(line.split(" ", 1) for line in head.decode("ascii").splitlines() if not line.startswith("#"))
    # the fields nuplan-devkit's parser reads: counts of 1, float32 rows, WIDTH * HEIGHT = POINTS
    assert lines["FIELDS"].split() == list(FIELDS) == ["x", "y", "z", "intensity", "ring", "lidar_info"]
    assert lines["SIZE"].split() == ["4"] * 6 and lines["TYPE"].split() == ["F"] * 6 and lines["COUNT"].split() == ["1"] * 6
    assert lines["WIDTH"] == "2" and lines["HEIGHT"] == "1" and lines["POINTS"] == "2"
    np.testing.assert_array_equal(np.frombuffer(body, "<f4").reshape(2, 6), pts)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lidar_world")
    params = GenerateParams(seed=3, grid_nodes_x=2, grid_nodes_y=2, num_logs=1, frames_per_log=16, render_images=False,
                            lidar=True, splits={"test": 1})
    return root, generate_world(root, params, progress=lambda d, t: None)


def test_every_lidar_path_is_a_written_point_cloud(world):
    root, summary = world
    (log,) = summary.logs["test"]
    frames = safe_load(root / "navsim_logs" / "test" / f"{log}.pkl")
    for frame in frames:
        assert frame["lidar_path"] == f"{log}/MergedPointCloud/{frame['token']}.pcd"
        assert all(c["data_path"] is None for c in frame["cams"].values())  # no images rendered
        pc = read_pcd(root / "sensor_blobs" / "test" / frame["lidar_path"])
        assert pc.dtype == np.float32 and pc.shape[0] == 6 and pc.shape[1] > 0
        # the ground rings lie at the ego's ground plane, in the lidar frame
        assert np.isclose(pc[2], -LIDAR2EGO_T[2], atol=1e-5).sum() >= 5 * 90
        # every annotated box has points at its centre's height, around its centre
        for x, y, z, length, width, _height, _ in frame["anns"]["gt_boxes"]:
            centre = np.array([x, y, z]) - LIDAR2EGO_T
            near = np.linalg.norm(pc[:2].T - centre[:2], axis=1) <= np.hypot(length, width) / 2 + 1e-3
            assert near.sum() >= 8


def test_default_writes_no_point_cloud(tmp_path):
    params = GenerateParams(grid_nodes_x=2, grid_nodes_y=2, num_logs=1, frames_per_log=16, render_images=False,
                            splits={"test": 1})
    summary = generate_world(tmp_path, params, progress=lambda d, t: None)
    (log,) = summary.logs["test"]
    assert all(f["lidar_path"] is None for f in safe_load(tmp_path / "navsim_logs" / "test" / f"{log}.pkl"))
    assert not list(tmp_path.rglob("*.pcd"))
