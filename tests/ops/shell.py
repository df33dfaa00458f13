"""Running git / dvc in throw-away repositories of the ops tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"
    return proc.stdout
