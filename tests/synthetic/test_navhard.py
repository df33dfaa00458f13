import numpy as np
import pytest

from drivefine_core.data.openscene_reader import load_log
from drivefine_core.data.openscene_writer import write_log
from drivefine_core.data.schema import global_to_ego
from drivefine_core.data.synthetic.navhard import perturbed_starts
from drivefine_core.data.synthetic.params import NavhardStartParams


@pytest.fixture(scope="module")
def frames(tiny_logs, tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    path = write_log(root, "navhard", "log0", tiny_logs[0][2])
    return load_log(path, required_cameras=["CAM_F0"]).frames  # the tiny logs render CAM_F0 only


def test_starts_are_jittered_logged_states_four_seconds_later(frames):
    params = NavhardStartParams(num_starts=8, seed=3)
    starts = perturbed_starts(frames, 10, params)
    assert len(starts) == 8 and len({s.token for s in starts}) == 8
    logged = frames[18].ego
    for s in starts:
        assert s.frame_index == 18 and s.source_token == frames[10].token and s.start_token == frames[18].token
        rel = global_to_ego(s.pose, logged.pose)
        assert abs(rel[0]) < 1e-9 and rel[1] == pytest.approx(s.lateral_offset_m)
        assert rel[2] == pytest.approx(s.heading_offset_rad)
        assert abs(s.lateral_offset_m) <= params.max_lateral_m and abs(s.heading_offset_rad) <= params.max_heading_rad
        np.testing.assert_allclose(s.velocity, logged.velocity * s.speed_scale)
        # the history moved rigidly with the start: same shape relative to it as the logged one
        logged_hist = np.stack([f.ego.pose for f in frames[15:19]])
        np.testing.assert_allclose(global_to_ego(s.history, s.pose), global_to_ego(logged_hist, logged.pose),
                                   atol=1e-9)
    lat = np.array([s.lateral_offset_m for s in starts])
    assert lat.std() > 0.1
    again = perturbed_starts(frames, 10, params)
    assert [s.token for s in again] == [s.token for s in starts]
    other = perturbed_starts(frames, 10, params.model_copy(update={"seed": 4}))
    assert other[0].lateral_offset_m != starts[0].lateral_offset_m


def test_start_past_the_log_end_is_refused(frames):
    with pytest.raises(ValueError, match="does not fit"):
        perturbed_starts(frames, len(frames) - 3, NavhardStartParams())
