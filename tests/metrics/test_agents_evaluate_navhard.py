"""Baselines, evaluate_agents and navhard two-stage weighting."""

import numpy as np
import pytest
import torch

from tests.metrics import toy_scenes as T
from drivefine_core.metrics.baselines import EgoStatusMLP, constant_velocity_agent, human_agent
from drivefine_core.metrics.evaluate import evaluate_agents
from drivefine_core.metrics.navhard import NavhardGroup, score_navhard, stage_two_weights
from drivefine_core.metrics.params import BaselineParams, MetricsParams

torch.set_num_threads(1)


def _caches():
    out = []
    for i, v in enumerate([4.0, 8.0, 12.0, 6.0]):
        out.append(T.straight_road(ego_speed=v, token=f"s{i}", log_name="L", timestamp_us=500_000 * i))
    out.append(T.curved_road(ego_speed=9.0, token="c0", log_name="M"))
    out.append(T.intersection(ego_speed=10.0, red_from_step=None, token="x0", log_name="N"))
    return out


def test_constant_velocity_and_human_agents():
    caches = _caches()
    cv = constant_velocity_agent(caches)
    assert cv.shape == (6, 8, 3)
    assert cv[1, -1, 0] == pytest.approx(32.0) and np.all(cv[..., 1:] == 0)
    caches[0].human_future[-1] = np.nan  # log ends early -> constant velocity fallback
    hu = human_agent(caches)
    assert np.allclose(hu[0], cv[0]) and np.allclose(hu[1], caches[1].human_future)


def test_mlp_is_deterministic_and_learns():
    caches = _caches()
    params = BaselineParams(mlp_epochs=200, mlp_hidden=16, mlp_lr=1e-2)
    a, b = EgoStatusMLP(params), EgoStatusMLP(params)
    la, lb = a.fit(caches), b.fit(caches)
    assert la == lb and la[-1] < 0.2 * la[0]
    np.testing.assert_array_equal(a.predict(caches), b.predict(caches))
    target = np.stack([c.human_future for c in caches])
    mse = np.mean((a.predict(caches) - target) ** 2)
    assert mse < 0.05 * np.mean((target - target.mean(axis=0)) ** 2)  # far better than the mean plan


def test_evaluate_agents_reports_both_versions_and_ranks_sensibly():
    caches = _caches()
    slow = lambda cs: constant_velocity_agent(cs) * 0.3  # noqa: E731
    means, table = evaluate_agents(caches, {"human": human_agent, "slow": slow}, MetricsParams(chunk_scenes=2))
    assert len(table) == 12 and set(table["agent"]) == {"human", "slow"}
    for key in ("human/v1/pdms", "human/v2/epdms", "slow/v1/ep", "slow/v2/lk", "human/v2/ec"):
        assert key in means
    assert means["human/v1/pdms"] > means["slow/v1/pdms"]
    assert means["human/v1/pdms"] == pytest.approx(table[table.agent == "human"]["v1/pdms"].mean())
    # chunks never split the log "L": every scene after the first of L has an EC value.
    ec = table[(table.agent == "human") & (table.log_name == "L")]["v2/ec"].to_numpy()
    assert np.isnan(ec[0]) and np.all(np.isfinite(ec[1:]))
    with pytest.raises(ValueError, match="agent 'bad'"):
        evaluate_agents(caches, {"bad": lambda cs: np.zeros((len(cs), 7, 3))})


def test_stage_two_weights():
    w = stage_two_weights(np.array([0.0, 0.0]), np.array([[0.0, 0.0], [0.3, 0.0], [5.0, 0.0]]))
    expected = np.exp(-np.array([0.0, 0.09, 25.0]) / 0.2)
    np.testing.assert_allclose(w, expected / expected.sum())
    far = stage_two_weights(np.array([0.0, 0.0]), np.array([[100.0, 0.0], [0.0, 200.0]]))
    np.testing.assert_allclose(far, [0.5, 0.5])


def test_navhard_group_score():
    orig = T.straight_road(ego_speed=10.0, token="o", log_name="H", timestamp_us=500_000)
    prev = T.straight_road(ego_speed=10.0, token="p", log_name="H", timestamp_us=0)
    syn = []
    for i, x in enumerate([40.0, 55.0]):  # the human plan ends at x = 40 (+ the rear-axle origin)
        c = T.straight_road([T.ToyAgent(25.0, 0.0)] if i == 1 else [], ego_speed=10.0, token=f"syn{i}", log_name=f"S{i}")
        c.origin = np.array([x, 0.0, 0.0])
        c.is_synthetic = True
        syn.append(c)
    score, table = score_navhard([NavhardGroup(orig, syn, prev, syn)], human_agent)
    # Stage 2: the near start (syn0, clean) carries all weight; syn1 (crash ahead) none.
    assert table.loc[0, "s2_now"] == pytest.approx(1.0)
    assert score == pytest.approx(0.5 * (table.loc[0, "s1_now"] * 1.0 + table.loc[0, "s1_prev"] * table.loc[0, "s2_prev"]))
    assert 0.0 < score <= 1.0
