"""The DVC remote on S3 (MinIO or any S3) and the DVC/git helpers the ops flows share.

The S3 remote a run uses (params ops.remote or DRIVEFINE_DVC_REMOTE_URL, endpoint from AWS_ENDPOINT_URL) is
never written to a config file: it is handed to DVC in memory for each push / pull of that run
(`Repo(config=...)`), so a run that fails, or is killed, leaves .dvc/config and .dvc/config.local as they
were and the next plain `dvc push` still goes to the repository's own default remote. Credentials never go
into any config at all - dvc-s3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment.
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
    default: bool = True  # pushes and pulls of the run go here (False: to the repository's default remote)

    def dvc_config(self) -> dict:
        """The remote as in-memory DVC config: its section, and the run's default remote when asked."""
        section = {"url": self.url}
        if self.endpoint_url:
            section["endpointurl"] = self.endpoint_url
        if self.region:
            section["region"] = self.region
        return {"remote": {self.name: section}, **({"core": {"remote": self.name}} if self.default else {})}


def resolve_remote(params: DvcRemoteParams) -> RemoteConfig | None:
    """The remote to configure from params, then env; None when neither names an S3 URL (laptop default)."""
    url = params.url or os.environ.get(REMOTE_URL_ENV, "")
    if not url:
        return None
    if not url.startswith("s3://"):
        raise DvcRemoteError(f"{REMOTE_URL_ENV}={url!r}: must be an s3://bucket/prefix URL")
    endpoint = next((os.environ[e] for e in ENDPOINT_ENVS if os.environ.get(e)), None)
    region = params.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return RemoteConfig(params.name, url.rstrip("/"), endpoint, region, params.make_default)


def run_remote(params: DvcRemoteParams | None = None) -> RemoteConfig | None:
    """The S3 remote of this run (validated, nothing written), or None: the repository's own remote."""
    return resolve_remote(params or DvcRemoteParams())


def open_repo(repo_root: str | Path, remote: RemoteConfig | None = None):  # noqa: ANN201 - dvc.repo.Repo
    """A DVC Repo that sees the run's remote in memory only (config files untouched)."""
    from dvc.repo import Repo

    return Repo(str(repo_root), config=remote.dvc_config() if remote else None)


def _abs(repo_root: str | Path, targets: list[str] | None) -> list[str] | None:
    """DVC resolves targets against the process cwd; the flows pass paths relative to the repo root."""
    return None if targets is None else [str(Path(repo_root).resolve() / t) for t in targets]


def _where(remote: RemoteConfig | None) -> str:
    return f" to remote {remote.name} ({remote.url})" if remote else ""


def push(repo_root: str | Path, targets: list[str] | None = None, remote: RemoteConfig | None = None) -> int:
    """`dvc push` (paths relative to repo_root, or everything tracked) to the run's remote, else the
    repository's default; returns the number of files sent."""
    try:
        with open_repo(repo_root, remote) as repo:
            return int(repo.push(targets=_abs(repo_root, targets)))
    except Exception as exc:  # DVC wraps S3 errors in many types; keep the cause, name the action
        raise DvcRemoteError(f"dvc push of {targets or 'the workspace'} in {repo_root}{_where(remote)} "
                             f"failed: {exc}") from exc


def pull(repo_root: str | Path, targets: list[str] | None = None, remote: RemoteConfig | None = None) -> int:
    """`dvc pull` from the run's remote (else the default): fetch and check out; returns files fetched."""
    try:
        with open_repo(repo_root, remote) as repo:
            result = repo.pull(targets=_abs(repo_root, targets))
    except Exception as exc:
        raise DvcRemoteError(f"dvc pull of {targets or 'the workspace'} in {repo_root}{_where(remote)} "
                             f"failed: {exc}") from exc
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
