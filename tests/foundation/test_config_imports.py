"""Validating params.yaml is light: no import cycle, no torch / GX / MLflow, one base for sections."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from drivefine_core.config import Params
from drivefine_core.params_base import Section
from flows.dvc_deps import file_imports

REPO = Path(__file__).resolve().parents[2]


def test_loading_params_imports_no_heavy_package():
    code = ("import sys, drivefine_core.config as c; c.load_params('params.yaml'); "
            "print(sorted(m for m in ('torch', 'great_expectations', 'mlflow', 'prefect', 'dvc', 'pandas', "
            "'boto3', 'pyarrow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"loading params.yaml imported {proc.stdout.strip()}"


def test_config_is_on_no_import_cycle():
    """No module that config.py reaches imports config.py back (at module level or in a function)."""
    config = REPO / "drivefine_core/config.py"
    seen, todo, back = set(), [config], []
    while todo:
        path = todo.pop()
        for dep in file_imports(REPO, path):
            if dep == config:
                back.append(path.relative_to(REPO).as_posix())
            elif dep not in seen:
                seen.add(dep)
                todo.append(dep)
    assert not back, f"these modules import drivefine_core/config.py, which imports them: {back}"


def _sections(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _sections(field.annotation)


def test_every_section_forbids_unknown_keys_through_one_base():
    sections = list(_sections(Params))
    assert len(sections) > 15
    assert [m.__name__ for m in sections if not issubclass(m, Section)] == []
    offenders = [p.relative_to(REPO).as_posix() for p in (REPO / "drivefine_core").rglob("*params*.py")
                 if p.name != "params_base.py" and 'ConfigDict(extra="forbid")' in p.read_text()]
    assert offenders == [], "sections derive from drivefine_core.params_base.Section"


def test_data_params_is_gone():
    import drivefine_core.data.params as data_params

    assert not hasattr(data_params, "DataParams")


@pytest.mark.parametrize("package", ["drivefine_core.models", "drivefine_core.validation"])
def test_lazy_package_names_resolve(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
