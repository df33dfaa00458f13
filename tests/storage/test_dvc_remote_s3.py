import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DVC = Path(sys.executable).parent / "dvc"


def run(args, cwd, env):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.integration
def test_dvc_push_pull_through_s3_remote(tmp_path, s3_env, s3_bucket):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    payload = os.urandom(200_000)
    (repo / "data" / "features.bin").write_bytes(payload)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    run(["git", "init", "-q"], repo, env)
    run([DVC, "init", "-q"], repo, env)
    run([DVC, "remote", "add", "-d", "s3remote", f"s3://{s3_bucket}/dvc"], repo, env)
    run([DVC, "remote", "modify", "s3remote", "endpointurl", s3_env], repo, env)
    run([DVC, "add", "-q", "data/features.bin"], repo, env)
    run([DVC, "push", "-q"], repo, env)

    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "data" / "features.bin").unlink()
    run([DVC, "pull", "-q"], repo, env)
    assert (repo / "data" / "features.bin").read_bytes() == payload
