"""Every dvc.yaml stage names a stage module that imports and has a run(params) entry point."""

import importlib

import pytest
import yaml

STAGES = yaml.safe_load(open("dvc.yaml"))["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_command_imports(name):
    cmd = STAGES[name]["cmd"]
    assert cmd.startswith("python -m stages."), cmd
    module = importlib.import_module(cmd.split()[-1])
    assert callable(module.run)
    deps = STAGES[name].get("deps", [])
    assert f"stages/{cmd.split('.')[-1]}.py" in deps  # a change to the script re-runs the stage
