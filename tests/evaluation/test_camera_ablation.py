"""The camera ablation takes every scene's camera from a scene of another log."""

from __future__ import annotations

import pytest

from drivefine_core.evaluation.agents import shuffled_images
from tests.metrics.toy_scenes import straight_road


def test_every_scene_gets_a_camera_from_another_log() -> None:
    caches = [straight_road(token=f"{log}-{i}", log_name=log) for log in ("a", "b", "c") for i in range(4 if log != "c" else 2)]
    log_of = {c.token: c.log_name for c in caches}
    mapping = shuffled_images(caches)
    assert set(mapping) == set(log_of)
    assert all(log_of[src] != log_of[dst] for dst, src in mapping.items())
    assert mapping == shuffled_images(caches)  # deterministic


def test_one_log_takes_the_scene_half_the_log_away() -> None:
    caches = [straight_road(token=f"s{i}", log_name="a") for i in range(5)]
    assert shuffled_images(caches) == {"s0": "s2", "s1": "s3", "s2": "s4", "s3": "s0", "s4": "s1"}
    with pytest.raises(ValueError, match="two scenes"):
        shuffled_images(caches[:1])


def test_a_collapsed_planner_is_detected() -> None:
    """A planner that emits one trajectory for every scene is no registry candidate, whatever it scores."""
    import numpy as np

    from drivefine_core.evaluation.ladder import plans_vary

    same = np.tile(np.linspace(0, 20, 24).reshape(8, 3), (5, 1, 1))
    assert not plans_vary({f"s{i}": p for i, p in enumerate(same)})
    moved = same.copy()
    moved[3, -1, 0] += 1.0
    assert plans_vary({f"s{i}": p for i, p in enumerate(moved)})
    assert not plans_vary({"only": same[0]})
