import numpy as np
import pandas as pd
from PIL import Image

from drivefine_core.reports.evaluation_report import SceneView, write_report
from tests.metrics.toy_scenes import straight_road


def test_report_has_table_curves_and_scene_pictures(tmp_path):
    cache = straight_road()
    planned = np.stack([np.arange(1, 9) * 5.0, np.zeros(8), np.zeros(8)], -1)
    table = pd.DataFrame({"v1/pdms": [0.91, 0.42], "v2/epdms": [0.88, 0.40]}, index=["mdm+refine", "constant_velocity"])
    curves = {"sft/mdm": [(0, 5.0), (10, 2.0), (20, 1.0)]}
    md = write_report(tmp_path, table, curves, [SceneView(cache, {"planned": planned, "human": cache.human_future,
                                                                  "pdm_closed": cache.reference[5::5]}, "best")])
    text = md.read_text()
    assert "| mdm+refine | 0.910 | 0.880 |" in text and "v1 = PDMS, v2 = EPDMS" in text
    assert "![best](scene_00.png)" in text and "training_curves.png" in text
    for png in ("scene_00.png", "training_curves.png"):
        img = np.asarray(Image.open(tmp_path / png).convert("RGB"))
        assert img.shape[0] > 200 and img.std() > 10  # a real picture, not a blank canvas
    html = (tmp_path / "report.html").read_text()
    assert "<td>0.910</td>" in html and "scene_00.png" in html


def test_planned_trajectory_is_drawn_in_its_colour(tmp_path):
    cache = straight_road()
    planned = np.stack([np.arange(1, 9) * 5.0, np.full(8, 3.0), np.zeros(8)], -1)
    write_report(tmp_path, pd.DataFrame({"v1/pdms": [1.0]}, index=["x"]), {}, [SceneView(cache, {"planned": planned}, "s")])
    img = np.asarray(Image.open(tmp_path / "scene_00.png").convert("RGB")).astype(int)
    red = (abs(img[..., 0] - 214) < 20) & (abs(img[..., 1] - 39) < 20) & (abs(img[..., 2] - 40) < 20)
    assert red.sum() > 50


def test_recorded_agent_keeps_the_scored_plans_by_token():
    from drivefine_core.evaluation.agents import Recorded

    caches = [straight_road(token="a"), straight_road(token="b")]
    calls = iter([np.full((2, 8, 3), 1.0), np.full((2, 8, 3), 2.0)])
    agent = Recorded(lambda cs: next(calls))
    first = agent(caches)
    agent(caches)  # a second call (another batch) overwrites with what was scored last
    assert first[0, 0, 0] == 1.0 and agent.plans["a"][0, 0] == 2.0 and set(agent.plans) == {"a", "b"}
