"""dvc.yaml's deps follow the code: each stage's deps cover the import closure of `stages.<name>`, and
editing a library file makes `dvc status` report exactly the stages that import it."""

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from flows.dvc_deps import (
    check_stages,
    closure,
    data_problems,
    minimal_cover,
    stages_covering,
    stages_importing,
    write_deps,
)
from tests.repo_copy import REPO, VENV_BIN, make_repo_copy, pipeline_env

FIX = "regenerate them with `python -m flows.dvc_deps --write`"


def test_every_stage_depends_on_the_code_it_imports():
    missing = [f"{c.stage}: {f}" for c in check_stages(REPO) for f in c.missing]
    assert not missing, f"dvc.yaml deps miss code the stages import ({FIX}):\n  " + "\n  ".join(missing)


def test_no_stage_depends_on_code_it_does_not_import():
    unused = [f"{c.stage}: {d}" for c in check_stages(REPO) for d in c.unused]
    assert not unused, f"dvc.yaml code deps no stage module imports ({FIX}):\n  " + "\n  ".join(unused)


def test_data_deps_follow_params():
    assert data_problems(REPO) == [], f"dvc.yaml's data deps differ from what params.yaml points at ({FIX})"


def test_dvc_ignores_bytecode():
    """A dep folder of code must not change hash when Python writes __pycache__ into it."""
    ignored = (REPO / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored and "*.pyc" in ignored


# --- the closure itself, on a small made-up repository ---------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def toy(tmp_path):
    return _tree(tmp_path, {
        "stages/__init__.py": "",
        "stages/a.py": """
            from lib import eager
            from lib.lazy import Thing
            from .helper import h

            def run():
                import lib.late  # function-level import
                import numpy  # outside the repository: not followed
            """,
        "stages/helper.py": "h = 1\n",
        "stages/b.py": "import lib.eager\n",
        "lib/__init__.py": '"""Only a docstring: runs nothing."""\n',
        "lib/eager.py": "from . import shared\n",
        "lib/shared.py": "X = 1\n",
        "lib/late.py": "Y = 2\n",
        "lib/lazy/__init__.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from lib.lazy.thing import Thing
                from lib.lazy.other import Other
            def __getattr__(name):
                import importlib
                return getattr(importlib.import_module(f"lib.lazy.{name.lower()}"), name)
            """,
        "lib/lazy/thing.py": "class Thing: ...\n",
        "lib/lazy/other.py": "class Other: ...\n",
        "lib/unused.py": "Z = 3\n",
        "dvc.yaml": """
            stages:
              a:
                cmd: python -m stages.a
                deps:
                  - data/in
                  - stages/a.py
                  - stages/helper.py
                  - lib/eager.py
                  - lib/lazy
              b:
                cmd: python -m stages.b
                deps:
                  - stages/b.py
                  - lib/eager.py
                  - lib/shared.py
                  - lib/unused.py
            """,
    })


def test_closure_follows_function_level_relative_and_lazy_imports(toy):
    assert closure(toy, "stages.a") == {
        "stages/a.py", "stages/helper.py", "lib/eager.py", "lib/shared.py", "lib/late.py",
        "lib/lazy/__init__.py", "lib/lazy/thing.py"}  # not lazy/other.py: only Thing is taken


def test_check_names_each_stage_and_missing_file(toy):
    checks = {c.stage: c for c in check_stages(toy)}
    assert checks["a"].missing == ["lib/late.py", "lib/shared.py"]
    assert checks["a"].unused == []  # data/in is not code; lib/lazy covers lazy/__init__.py
    assert checks["b"].missing == [] and checks["b"].unused == ["lib/unused.py"]
    assert stages_importing(toy, "lib/shared.py") == {"a", "b"}
    assert stages_covering(toy, "lib/shared.py") == {"b"}


def test_write_makes_deps_exactly_the_closure(toy):
    write_deps(toy)
    spec = yaml.safe_load((toy / "dvc.yaml").read_text())["stages"]
    assert spec["b"]["deps"] == ["lib/eager.py", "lib/shared.py", "stages/b.py"]
    assert spec["a"]["deps"][0] == "data/in"  # data deps kept
    assert all(c.ok for c in check_stages(toy))
    # a folder only where all of its code is in the closure
    assert minimal_cover(toy, closure(toy, "stages.a")) == [
        "lib/eager.py", "lib/late.py", "lib/lazy/__init__.py", "lib/lazy/thing.py", "lib/shared.py",
        "stages/a.py", "stages/helper.py"]


# --- real DVC in a copy of the repository -----------------------------------------------------------

def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(Path(VENV_BIN) / "dvc"), *args], cwd=repo, env=pipeline_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _fake_outputs(repo: Path) -> None:
    """Stand-in outputs for every stage, so that `dvc commit` can record the graph as up to date
    without running it."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for stage in spec.values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                path = repo / (entry if isinstance(entry, str) else next(iter(entry)))
                if path.suffix:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("{}\n")
                else:
                    path.mkdir(parents=True, exist_ok=True)
                    (path / "stand-in.txt").write_text("x\n")
        for dep in stage.get("deps", []):  # parts of an output a stage reads (data/synthetic/maps)
            if not (repo / dep).exists():
                (repo / dep).mkdir(parents=True)
                (repo / dep / "stand-in.txt").write_text("x\n")


@pytest.mark.integration
def test_dvc_status_reports_exactly_the_stages_importing_an_edited_file(tmp_path):
    repo = make_repo_copy(tmp_path / "drivefine")
    _fake_outputs(repo)
    _dvc(repo, "commit", "-f", "-q")
    assert json.loads(_dvc(repo, "status", "--json").stdout) == {}
    all_stages = set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    for path in ("drivefine_core/data/safe_pickle.py", "drivefine_core/metrics/scorer.py"):
        expected = stages_importing(repo, path)
        assert expected and expected != all_stages, (path, expected)  # the edit must tell stages apart
        with open(repo / path, "a") as f:
            f.write("\n# edited\n")
        changed = set(json.loads(_dvc(repo, "status", "--json").stdout))
        assert changed == expected, f"{path}: dvc status says {sorted(changed)}, imported by {sorted(expected)}"
        _dvc(repo, "commit", "-f", "-q")
    assert "ingest" in stages_importing(repo, "drivefine_core/data/safe_pickle.py")
    assert "evaluate" in stages_importing(repo, "drivefine_core/metrics/scorer.py")


def _navsim_root(root: Path) -> Path:
    """A NAVSIM-layout folder outside the repository: two splits of logs and cameras, and maps."""
    for split in ("navtrain", "navtest"):
        (root / f"navsim_logs/{split}").mkdir(parents=True)
        (root / f"navsim_logs/{split}/log_{split}.pkl").write_bytes(b"a log")
        (root / f"sensor_blobs/{split}/log_{split}/CAM_F0").mkdir(parents=True)
        (root / f"sensor_blobs/{split}/log_{split}/CAM_F0/0.jpg").write_bytes(b"jpeg")
    (root / "maps").mkdir()
    (root / "maps/nuplan-maps-v1.0.json").write_text("{}")
    return root


@pytest.mark.integration
@pytest.mark.slow  # ten real `dvc status` / `dvc commit` runs: about a minute
def test_dvc_status_reports_the_stages_reading_changed_data_under_data_source(tmp_path):
    navsim = _navsim_root(tmp_path / "navsim")
    repo = make_repo_copy(tmp_path / "drivefine", {"data.source": str(navsim), "data.split_dirs": ["navtrain", "navtest"]})
    assert data_problems(repo)  # params moved, dvc.yaml not regenerated yet: the flow refuses to run
    write_deps(repo)
    assert data_problems(repo) == []
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert f"{navsim}/navsim_logs/navtrain" in spec["ingest"]["deps"] and "data/synthetic" not in spec["ingest"]["deps"]
    assert f"{navsim}/maps" in spec["metric_cache"]["deps"]
    _fake_outputs(repo)
    _dvc(repo, "commit", "-f", "-q")
    assert json.loads(_dvc(repo, "status", "--json").stdout) == {}
    for change, expected in ((lambda: (navsim / "navsim_logs/navtest/log_navtest.pkl").write_bytes(b"changed"), {"ingest"}),
                             (lambda: (navsim / "navsim_logs/navtrain/new_log.pkl").write_bytes(b"new"), {"ingest"}),
                             (lambda: (navsim / "sensor_blobs/navtest/log_navtest/CAM_F0/1.jpg").write_bytes(b"j"), {"features"}),
                             (lambda: (navsim / "maps/nuplan-maps-v1.0.json").write_text('{"v": 2}'), {"metric_cache"})):
        change()
        assert set(json.loads(_dvc(repo, "status", "--json").stdout)) == expected
        _dvc(repo, "commit", "-f", "-q")


def test_real_data_inside_the_generated_folder_is_refused():
    from drivefine_core.pipeline_params import DataSourceParams
    from stages.sources import data_inputs

    with pytest.raises(ValueError, match="data.maps_root: data/synthetic/nuplan-maps lies in data/synthetic"):
        data_inputs(DataSourceParams(source="/datasets/navsim", maps_root="data/synthetic/nuplan-maps"))
    with pytest.raises(ValueError, match="data.source"):
        data_inputs(DataSourceParams(source="./data/synthetic/navsim"))
    assert data_inputs(DataSourceParams())["metric_cache"] == ["data/synthetic/maps"]  # the generated maps
