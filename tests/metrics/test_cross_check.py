"""Fast batched scorer vs the plain reference scorer on >= 1,000 random and adversarial candidates."""

import numpy as np

from drivefine_core.metrics.reference_scorer import reference_score, simulate_plan
from drivefine_core.metrics.scorer import predecessors, score_trajectories, simulate_rows
from tests.metrics.toy_random import random_candidates, random_scenes

N_SCENES, N_CAND = 25, 40


def test_fast_matches_plain_on_1000_candidates():
    caches = random_scenes(seed=7, count=N_SCENES)
    rng = np.random.default_rng(11)
    plans = np.stack([random_candidates(rng, c, N_CAND) for c in caches])
    fast = score_trajectories(caches, plans, "both")
    states, _ = simulate_rows(caches, plans)
    prev = predecessors(caches)
    assert sum(p is not None for p in prev) >= 3
    checked, sim_checked = 0, 0
    seen = {k: set() for k in ("v1/nc", "v1/ttc", "v1/dac", "v1/ep", "v2/tlc", "v2/lk", "v2/ddc", "v2/hc", "v2/ec")}
    for i, c in enumerate(caches):
        for g in range(N_CAND):
            sim = states[i, 1 + g]
            if g % 8 == 0:  # the plain simulator on an eighth of the candidates (it is slow)
                plain = simulate_plan(c, plans[i, g])
                np.testing.assert_allclose(sim, plain, atol=1e-7, err_msg=f"simulation scene {i} cand {g}")
                sim_checked += 1
            previous = None if prev[i] is None else (caches[prev[i]], plans[prev[i], g])
            for version in ("v1", "v2"):
                ref = reference_score(c, plans[i, g], version, previous=previous, states=sim)
                for key, value in ref.items():
                    got = fast[key][i, g]
                    if key.endswith("pdms"):
                        assert abs(got - value) <= 1e-6, (key, i, g, got, value)
                    elif np.isnan(value):
                        assert np.isnan(got), (key, i, g, got)
                    else:
                        assert got == value or abs(got - value) <= 1e-9, (key, i, g, got, value)
                    if key in seen and not np.isnan(value):
                        seen[key].add(round(float(value), 3))
            checked += 1
    assert checked >= 1000 and sim_checked >= 125
    # The random set must exercise both outcomes of the discrete sub-scores, or the check proves little.
    for key, values in seen.items():
        assert len(values) >= 2, (key, values)
