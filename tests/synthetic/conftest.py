import numpy as np
import pytest

from drivefine_core.data.synthetic.agents import cast_log
from drivefine_core.data.synthetic.cameras import rig
from drivefine_core.data.synthetic.lights import light_table
from drivefine_core.data.synthetic.log_frames import build_frames
from drivefine_core.data.synthetic.map_gen import generate_map
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.routes import Topology
from drivefine_core.data.synthetic.simulate import simulate

TINY = GenerateParams(seed=11, grid_nodes_x=3, grid_nodes_y=3, edge_removal_fraction=0.0, frames_per_log=80, cut_in_prob=1.0,
                      image_width=64, image_height=36)


def make_log(params: GenerateParams, smap, k: int):
    topo, lights = Topology(smap.network), light_table(smap)
    rng = np.random.default_rng([params.seed, 7, k])
    cast = cast_log(smap, topo, params, (params.frames_per_log - 1) * 0.5, rng)
    sim = simulate(cast, lights, params.frames_per_log, rng)
    frames = build_frames(smap, cast, sim, lights, rig(params.image_width, params.image_height), f"log{k}",
                          1_700_000_000_000_000, params.annotation_radius_m, rng, images=params.cameras,
                          exit_margin_m=params.annotation_exit_margin_m)
    return cast, sim, frames


@pytest.fixture(scope="session")
def tiny_map():
    return generate_map(TINY)


@pytest.fixture(scope="session")
def tiny_logs(tiny_map):
    """Six simulated logs of 40 s on the 3x3 town: (cast, sim, frames) each."""
    return [make_log(TINY, tiny_map, k) for k in range(6)]


@pytest.fixture(scope="session")
def tiny_params():
    return TINY


@pytest.fixture(scope="session")
def log_maker():
    return make_log
