"""The one registry of planning modes and families (models/modes.py) that params, stages and bench read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivefine_core.models.modes import ABLATIONS, FAMILIES, FAMILY_OF, MODES, RL_MODE, modes_of
from drivefine_core.pipeline_params import EvaluateParams
from tests.models.conftest import tiny_params


def test_every_mode_belongs_to_one_family_and_rl_optimises_one_of_its_modes() -> None:
    assert set(FAMILY_OF) == set(MODES)
    assert sorted(m for f in FAMILIES for m in modes_of(f, ablations=True)) == sorted(MODES)
    assert modes_of("spanvla") == ("ar", "flow") and "flow-noise" in ABLATIONS
    assert all(FAMILY_OF[RL_MODE[f]] == f for f in FAMILIES)
    with pytest.raises(ValueError, match="unknown planner family 'transfuser'"):
        modes_of("transfuser")


def test_params_take_the_modes_from_the_registry() -> None:
    assert tuple(EvaluateParams().modes) == MODES
    with pytest.raises(ValidationError, match="modes"):
        EvaluateParams(modes=["mdm", "diffusiondrive"])


def test_every_family_has_its_planner_class() -> None:
    from drivefine_core.models.planner import planner_class

    for family in FAMILIES:
        cls = planner_class(family)
        assert cls.family == family and cls(tiny_params()).modes == modes_of(family, ablations=True)
