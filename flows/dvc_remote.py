"""The DVC remote on S3 (MinIO or any S3) and the DVC/git helpers the ops flows share.

The remote goes into .dvc/config.local, which DVC git-ignores: URLs and endpoints are per machine, and
credentials never go into any config file at all - dvc-s3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
from the environment like boto3 does.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from drivefine_core.ops.params import REMOTE_URL_ENV, DvcRemoteParams

ENDPOINT_ENVS = ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")  # first set wins
_FALLBACK_GIT_ID = ("drivefine-ops", "drivefine-ops@localhost")


class DvcRemoteError(RuntimeError):
    """Configuring, pushing to or pulling from the DVC remote failed; the message says which and where."""


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    url: str
    endpoint_url: str | None
    region: str | None


def resolve_remote(params: DvcRemoteParams) -> RemoteConfig | None:
    """The remote to configure from params, then env; None when neither names an S3 URL (laptop default)."""
    url = params.url or os.environ.get(REMOTE_URL_ENV, "")
    if not url:
        return None
    if not url.startswith("s3://"):
        raise DvcRemoteError(f"{REMOTE_URL_ENV}={url!r}: must be an s3://bucket/prefix URL")
    endpoint = next((os.environ[e] for e in ENDPOINT_ENVS if os.environ.get(e)), None)
    region = params.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return RemoteConfig(params.name, url.rstrip("/"), endpoint, region)


def configure_remote(repo_root: str | Path, params: DvcRemoteParams | None = None) -> RemoteConfig | None:
    """Write the S3 remote (url, endpointurl, region) to .dvc/config.local; make it the default if asked.

    Returns what was written, or None when no S3 URL is configured (the repository's remote stays).
    """
    from dvc.repo import Repo

    params = params or DvcRemoteParams()
    remote = resolve_remote(params)
    if remote is None:
        return None
    section = {"url": remote.url}
    if remote.endpoint_url:
        section["endpointurl"] = remote.endpoint_url
    if remote.region:
        section["region"] = remote.region
    with Repo(str(repo_root)) as repo:
        with repo.config.edit("local") as conf:
            conf.setdefault("remote", {})[remote.name] = section
            if params.make_default:
                conf.setdefault("core", {})["remote"] = remote.name
    return remote


def _abs(repo_root: str | Path, targets: list[str] | None) -> list[str] | None:
    """DVC resolves targets against the process cwd; the flows pass paths relative to the repo root."""
    return None if targets is None else [str(Path(repo_root).resolve() / t) for t in targets]


def push(repo_root: str | Path, targets: list[str] | None = None, remote: str | None = None) -> int:
    """`dvc push` (paths relative to repo_root, or everything tracked); returns the number of files sent."""
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            return int(repo.push(targets=_abs(repo_root, targets), remote=remote))
    except Exception as exc:  # DVC wraps S3 errors in many types; keep the cause, name the action
        raise DvcRemoteError(f"dvc push of {targets or 'the workspace'} in {repo_root} failed: {exc}") from exc


def pull(repo_root: str | Path, targets: list[str] | None = None, remote: str | None = None) -> int:
    """`dvc pull`: fetch from the remote and check out; returns the number of files fetched."""
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            result = repo.pull(targets=_abs(repo_root, targets), remote=remote)
    except Exception as exc:
        raise DvcRemoteError(f"dvc pull of {targets or 'the workspace'} in {repo_root} failed: {exc}") from exc
    return int(result.get("stats", {}).get("fetched", 0))


def git(repo_root: str | Path, *args: str) -> str:
    """Run git in the repository with an identity even on a bare worker; stdout, or a named error."""
    ident: list[str] = []
    probe = subprocess.run(["git", "config", "user.email"], cwd=repo_root, capture_output=True, text=True)
    if not probe.stdout.strip():  # GIT_AUTHOR_* / GIT_COMMITTER_* in the environment still win
        ident = ["-c", f"user.name={_FALLBACK_GIT_ID[0]}", "-c", f"user.email={_FALLBACK_GIT_ID[1]}"]
    proc = subprocess.run(["git", *ident, *args], cwd=repo_root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DvcRemoteError(f"git {' '.join(args)} in {repo_root} failed: {proc.stderr.strip()}")
    return proc.stdout


def needs_recording(repo_root: str | Path, path: str) -> bool:
    """True when the folder holds data its committed .dvc file does not describe (a run that stopped
    between writing the data and `git commit`), so the next run records it even with nothing new."""
    from dvc.repo import Repo

    root = Path(repo_root).resolve()
    dvc_file = root / f"{path}.dvc"
    if not (root / path).exists():
        return False
    if not dvc_file.exists():
        return True
    if git(root, "status", "--porcelain", "--", f"{path}.dvc").strip():
        return True  # `dvc add` ran, the commit did not
    with Repo(str(root)) as repo:
        return bool(repo.status(targets=[str(dvc_file)]))


def track_and_commit(repo_root: str | Path, path: str, message: str, commit: bool = True) -> str | None:
    """`dvc add` a folder, then `git add` + `git commit` only its .dvc file and .gitignore.

    Returns the new commit sha (None when not committing or when the data did not change).
    The .dvc file is added with -f so a parent ignore rule cannot hide a data version from git.
    """
    from dvc.repo import Repo

    root = Path(repo_root)
    with Repo(str(root)) as repo:
        repo.add([str(root.resolve() / path)])
    dvc_file = f"{path}.dvc"
    ignore = str(Path(path).parent / ".gitignore")
    paths = [dvc_file] + ([ignore] if (root / ignore).exists() else [])
    if not commit:
        return None
    git(root, "add", "-f", "--", *paths)
    if not git(root, "diff", "--cached", "--name-only", "--", *paths).strip():
        return None
    git(root, "commit", "-q", "-m", message, "--", *paths)
    return git(root, "rev-parse", "HEAD").strip()
