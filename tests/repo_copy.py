"""Run the pipeline in a throw-away copy of this repository, never in the working tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)


def tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    return [p for p in out.split("\0") if p and (repo / p).is_file()]


def make_repo_copy(dest: Path, params_overrides: dict | None = None) -> Path:
    """Copy the working tree's files (committed or not, minus ignored ones), commit them in a new
    git repository, and point DVC's default remote at a folder beside the copy."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files(REPO):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    if params_overrides:
        params = yaml.safe_load((dest / "params.yaml").read_text())
        for dotted, value in params_overrides.items():
            node = params
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


def pipeline_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1",
                # a loaded CI machine starts Prefect's temporary server in more than its default 20 s
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"})
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "PREFECT_API_URL", "DRIVEFINE_PARENT_RUN_ID"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_cli(repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run([str(Path(VENV_BIN) / "drivefine"), *args], cwd=repo, env=env or pipeline_env(),
                          capture_output=True, text=True, timeout=timeout)
