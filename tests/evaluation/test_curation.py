"""The curated test split: scenes a trivial plan solves and scenes the human does not are left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drivefine_core.evaluation.curation import curated_tokens, means_over
from drivefine_core.pipeline_params import CurationParams, EvaluateParams


def _per_scene() -> pd.DataFrame:
    # scene: (constant velocity, human, planner) PDMS
    scores = {"easy": (0.9, 0.95, 0.9), "hard": (0.3, 0.9, 0.6), "unsolved": (0.2, 0.5, 0.1), "edge": (0.8, 0.8, 0.7),
              "hard2": (0.79, 0.8, 0.8)}
    rows = [{"agent": a, "token": t, "v1/pdms": s[i], "v2/ec": np.nan}
            for t, s in scores.items() for i, a in enumerate(("constant_velocity", "human", "planner"))]
    return pd.DataFrame(rows)


def test_curated_tokens_follow_the_thresholds() -> None:
    # "edge": constant velocity 0.8 is not < 0.8 -> out; "hard2": human 0.8 >= 0.8 -> in
    assert curated_tokens(_per_scene(), CurationParams()) == ["hard", "hard2"]
    assert curated_tokens(_per_scene(), CurationParams(max_constant_velocity=1.0, min_human=0.0)) == \
        ["easy", "hard", "unsolved", "edge", "hard2"]


def test_means_over_the_curated_scenes() -> None:
    table = means_over(_per_scene(), ["hard", "hard2"], ("v1/pdms", "v2/ec", "v2/nc"))
    assert table.loc["planner", "v1/pdms"] == pytest.approx(0.7)
    assert table.loc["constant_velocity", "v1/pdms"] == pytest.approx(0.545)
    assert np.isnan(table.loc["planner", "v2/ec"]) and "v2/nc" not in table.columns


def test_curation_needs_its_baselines() -> None:
    with pytest.raises(ValueError, match="constant_velocity"):
        curated_tokens(_per_scene().query("agent != 'constant_velocity'"), CurationParams())
    with pytest.raises(ValueError, match=r"evaluate.curated.enabled needs \['human'\]"):
        EvaluateParams(baselines=["constant_velocity"])
    EvaluateParams(baselines=["constant_velocity"], curated=CurationParams(enabled=False))
