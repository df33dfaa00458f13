import numpy as np
import pytest
from PIL import Image
from shapely.geometry import Polygon

from drivefine_core.data.gpkg_reader import read_map
from drivefine_core.data.openscene_reader import load_log
from drivefine_core.data.safe_pickle import safe_load
from drivefine_core.data.synthetic.cameras import camera
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.raster import ROAD, WHITE, MapRaster
from drivefine_core.data.synthetic.render import CLASS_COLOURS, ground_model, render
from drivefine_core.data.synthetic.world import assign_splits, generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    params = GenerateParams(seed=2, grid_nodes_x=3, grid_nodes_y=2, num_logs=3, frames_per_log=20, image_width=64,
                            image_height=36, cameras=["CAM_F0", "CAM_L0"], splits={"train": 2, "test": 1})
    return root, params, generate_world(root, params, progress=lambda done, total: None)


def test_layout_and_logs_read_back(world):
    root, params, summary = world
    assert {k: len(v) for k, v in summary.logs.items()} == {"train": 2, "test": 1}
    assert summary.frames == 3 * 20 and summary.images == 3 * 20 * 2
    for split, names in summary.logs.items():
        for name in names:
            path = root / "navsim_logs" / split / f"{name}.pkl"
            raw = safe_load(path)  # plain containers and numeric arrays only
            log = load_log(path, require_annotations=True, required_cameras=params.cameras)
            assert len(log.frames) == 20 and log.map_location == summary.maps[0]
            for raw_frame, frame in zip(raw, log.frames):
                np.testing.assert_allclose(frame.ego.pose[:2], raw_frame["ego2global_translation"][:2])
                for cam in ("CAM_F0", "CAM_L0"):
                    img = Image.open(root / "sensor_blobs" / split / frame.cameras[cam].data_path)
                    assert img.size == (64, 36) and img.format == "JPEG"
                assert "CAM_B0" not in frame.cameras  # calibrated, but no image: not read as a camera
    assert not list(root.rglob(".*tmp*"))


def test_every_file_a_log_names_exists(world):
    root, params, summary = world
    named = 0
    for split, names in summary.logs.items():
        for name in names:
            for frame in safe_load(root / "navsim_logs" / split / f"{name}.pkl"):
                assert sorted(frame["cams"]) == sorted(["CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1",
                                                        "CAM_R2", "CAM_B0"])
                paths = [c["data_path"] for c in frame["cams"].values() if c["data_path"] is not None]
                assert len(paths) == len(params.cameras)
                if frame["lidar_path"] is not None:
                    paths.append(frame["lidar_path"])
                for rel in paths:
                    assert (root / "sensor_blobs" / split / rel).is_file(), rel
                    named += 1
    assert named == summary.images


def test_map_round_trip_polygons_and_graph(world):
    root, params, summary = world
    from drivefine_core.data.synthetic.map_gen import generate_map

    net = generate_map(params, 0).network
    back = read_map(root / "maps", summary.maps[0])
    for k, lane in net.lanes.items():
        assert Polygon(back.lanes[k].polygon).symmetric_difference(Polygon(lane.polygon)).area < 1e-6
    for k, rbc in net.roadblock_connectors.items():
        assert Polygon(back.roadblock_connectors[k].polygon).equals_exact(Polygon(rbc.polygon), 1e-6)
    for k in net.lanes:
        assert sorted(back.successors(k)) == sorted(net.successors(k))


def test_splits_follow_shares():
    p = GenerateParams(num_logs=10, splits={"a": 0.7, "b": 0.3})
    got = assign_splits(p)
    assert got.count("a") == 7 and got.count("b") == 3 and got[:3] != ["a", "a", "a"]


def test_lane_marking_lands_on_the_expected_pixel():
    """A 3 m x 0.6 m white dash on the ground 20 m ahead of the ego lands where the pinhole model puts it."""
    cam = camera("CAM_F0", 256, 144)
    res = 0.05
    classes = np.full((2000, 2000), ROAD, np.uint8)  # 100 m x 100 m around the origin
    raster = MapRaster(classes, x0=-50.0, y1=50.0, res=res)
    pose = np.array([-10.0, 5.0, 0.3])  # ego rear axle and heading in the map frame
    ahead, left = 20.0, 2.0  # marking in the ego frame
    gx = pose[0] + np.cos(pose[2]) * ahead - np.sin(pose[2]) * left
    gy = pose[1] + np.sin(pose[2]) * ahead + np.cos(pose[2]) * left
    along, across = np.array([np.cos(pose[2]), np.sin(pose[2])]), np.array([-np.sin(pose[2]), np.cos(pose[2])])
    for a in np.arange(-1.5, 1.5, res / 2):  # paint the dash cell by cell in the raster
        for b in np.arange(-0.3, 0.3, res / 2):
            x, y = np.array([gx, gy]) + a * along + b * across
            classes[int((50.0 - y) / res), int((x + 50.0) / res)] = WHITE
    image = np.asarray(render(cam, ground_model(cam), raster, pose, np.zeros((0, 7)), np.zeros((0, 3))))
    # camera at (1.9, 0, 1.6) in the ego frame, looking along x: u = cx - f*y/x, v = cy + f*h/x
    k = cam.intrinsic
    depth = ahead - 1.9
    u = k[0, 2] - k[0, 0] * left / depth
    v = k[1, 2] + k[1, 1] * 1.6 / depth
    assert image[int(v), int(u)].mean() > 200
    assert image[int(v) + 8, int(u)].mean() < 120 and image[int(v), int(u) + 10].mean() < 120
    assert image[int(v), int(u) - 10].mean() < 120


def test_box_is_drawn_in_its_class_colour_where_it_stands():
    cam = camera("CAM_F0", 256, 144)
    raster = MapRaster(np.full((10, 10), ROAD, np.uint8), x0=-1e4, y1=1e4, res=1.0)  # off-map: plain ground
    box = np.array([[15.0, 0.0, 0.9, 4.5, 1.9, 1.8, 0.0]])
    colour = np.array([CLASS_COLOURS["pedestrian"]], float)
    image = np.asarray(render(cam, ground_model(cam), raster, np.zeros(3), box, colour)).astype(int)
    k = cam.intrinsic
    depth = 15.0 - 4.5 / 2 - 1.9  # the rear face is the visible one
    u, v = int(k[0, 2]), int(k[1, 2] + k[1, 1] * (1.6 - 0.9) / depth)
    assert np.abs(image[v, u] - np.array(CLASS_COLOURS["pedestrian"]) * 0.6).max() < 40  # shaded rear face
    left_edge = int(k[0, 2] - k[0, 0] * 1.6 / depth)  # 1.6 m left of the box centre: outside it
    assert np.abs(image[v, left_edge] - image[v, u]).sum() > 60


def test_world_bytes_do_not_depend_on_workers(tmp_path):
    params = GenerateParams(seed=4, grid_nodes_x=2, grid_nodes_y=3, num_logs=2, frames_per_log=16, image_width=48,
                            image_height=27)
    a = generate_world(tmp_path / "a", params, progress=lambda done, total: None)
    b = generate_world(tmp_path / "b", params.model_copy(update={"workers": 2}), progress=lambda done, total: None)
    assert a.logs == b.logs
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.suffix in (".pkl", ".jpg"))
    assert len(files) == 2 + 2 * 16
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
