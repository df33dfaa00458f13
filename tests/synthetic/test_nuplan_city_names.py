"""generate.nuplan_city_names: the towns under nuPlan's four locations, all four under the maps root."""

import json

import pytest

from drivefine_core.data.gpkg_reader import read_map
from drivefine_core.data.safe_pickle import safe_load
from drivefine_core.data.synthetic.params import NUPLAN_LOCATIONS, GenerateParams
from drivefine_core.data.synthetic.world import generate_world

SMALL = dict(grid_nodes_x=2, grid_nodes_y=2, num_logs=1, frames_per_log=16, render_images=False, splits={"test": 1})


def test_towns_under_the_four_nuplan_locations(tmp_path):
    summary = generate_world(tmp_path, GenerateParams(nuplan_city_names=True, **SMALL), progress=lambda d, t: None)
    maps = tmp_path / "maps"
    index = json.loads((maps / "nuplan-maps-v1.0.json").read_text())
    assert sorted(index) == sorted(NUPLAN_LOCATIONS) == sorted(summary.maps)
    for location in NUPLAN_LOCATIONS:
        version = index[location]["version"]
        assert version == "synthetic-1.0.0"  # clearly not one of nuPlan's own map versions
        assert (maps / location / version / "map.gpkg").is_file()
        assert read_map(maps, location).lanes
    (log,) = summary.logs["test"]
    frames = safe_load(tmp_path / "navsim_logs" / "test" / f"{log}.pkl")
    assert {f["map_location"] for f in frames} == {"us-nv-las-vegas-strip"}


def test_default_keeps_synthetic_town_names(tmp_path):
    summary = generate_world(tmp_path, GenerateParams(**SMALL), progress=lambda d, t: None)
    assert summary.maps == ["synthetic-town-s0-m0"]
    assert json.loads((tmp_path / "maps" / "nuplan-maps-v1.0.json").read_text())["synthetic-town-s0-m0"]["version"] == "1.0.0"


def test_at_most_one_town_per_location():
    with pytest.raises(ValueError, match="num_maps"):
        GenerateParams(nuplan_city_names=True, num_maps=5)
