import pytest

from drivefine_core.config import ParamsError, flatten, load_params, parse_params


def test_repository_params_yaml_is_valid():
    params = load_params("params.yaml")
    assert params.tracking.registered_model == "drivefine-planner"


def test_unknown_key_is_named_with_allowed_keys():
    with pytest.raises(ParamsError) as err:
        parse_params({"promotion": {"min_gian": 0.1}})
    msg = str(err.value)
    assert "promotion.min_gian: unknown key" in msg
    assert "min_gain" in msg  # the allowed keys are listed


def test_wrong_type_and_bad_choice_are_named():
    with pytest.raises(ParamsError) as err:
        parse_params({"run": {"seed": "abc"}, "promotion": {"primary_metric": "pdms"}})
    msg = str(err.value)
    assert "run.seed" in msg and "'abc'" in msg
    assert "promotion.primary_metric" in msg and "'v2/epdms' or 'v1/pdms'" in msg


def test_unknown_section_is_named(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("trainng:\n  lr: 1\n")
    with pytest.raises(ParamsError, match=r"trainng: unknown key"):
        load_params(bad)


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": [1, 2], "d": "x"}


def test_params_yaml_lists_every_knob():
    """params.yaml is where users look for knobs: every field of every section must be written there."""
    import yaml

    from drivefine_core.config import Params

    written = yaml.safe_load(open("params.yaml"))

    def missing(model: dict, text: dict, prefix: str = "") -> list[str]:
        out = []
        for key, value in model.items():
            if key not in text:
                out.append(prefix + key)
            elif isinstance(value, dict) and value and isinstance(text[key], dict):
                out += missing(value, text[key], f"{prefix}{key}.")
        return out

    assert missing(Params().model_dump(mode="json"), written) == []


def test_sections_must_agree():
    with pytest.raises(ParamsError, match="features.image_height/width"):
        parse_params({"features": {"image_width": 160, "image_height": 90}})
    with pytest.raises(ParamsError, match="model.num_views"):
        parse_params({"features": {"cameras": ["CAM_L0", "CAM_F0", "CAM_R0"]}, "generate": {"cameras": ["CAM_F0", "CAM_L0", "CAM_R0"]}})
