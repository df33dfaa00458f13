"""The ingest-new-logs flow: new NAVSIM logs on S3 -> a new DVC data version -> a retrain.

1. list s3://<bucket>/<prefix>/<split>/*.pkl (endpoint from AWS_ENDPOINT_URL, so MinIO works too);
2. download the logs not seen before into the DVC-tracked folder (params ops.ingest.dest_dir), each written
   to a temp name and renamed, so a crash never leaves half a log;
3. "seen" = listed in the folder's _manifest.json with the same ETag and size, and present on disk;
   a log re-uploaded with new content is taken again;
4. `dvc add` the folder, `git commit` its .dvc file (one commit per data version), `dvc push` it;
5. trigger the retrain: as a subflow here, through a deployment on a Prefect server, or not at all.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger

from drivefine_core.config import load_ops_params
from drivefine_core.ops.params import IngestLogsParams
from drivefine_core.storage import download as fetch_uri
from drivefine_core.storage import list_prefix
from flows import dvc_remote

MANIFEST = "_manifest.json"
LOG_SUFFIX = ".pkl"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RemoteLog:
    rel: str  # <split>/<name>.pkl, the path inside the DVC-tracked folder
    key: str
    etag: str
    size: int


@dataclass
class IngestReport:
    source: str
    dest_dir: str
    new: list[str] = field(default_factory=list)
    seen: int = 0
    rejected: list[str] = field(default_factory=list)  # keys that are not <split>/<safe name>.pkl
    commit: str | None = None
    pushed: int = 0
    triggered: str = "none"
    recovered: bool = False  # nothing new, but an earlier run's data was not committed yet: recorded now

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_remote_logs(bucket: str, prefix: str, splits: list[str]) -> tuple[list[RemoteLog], list[str]]:
    """Logs under s3://bucket/prefix/<split>/ (one level of split, *.pkl), and keys refused as unsafe."""
    base = f"{prefix.strip('/')}/".lstrip("/")  # 'a/b' must not match 'a/bc'; '' is the whole bucket
    logs: list[RemoteLog] = []
    rejected: list[str] = []
    for obj in list_prefix(f"s3://{bucket}/{base}"):
        key = obj.uri.split("/", 3)[3]
        rel = key[len(base):]
        parts = rel.split("/")
        if not rel.endswith(LOG_SUFFIX):
            continue  # maps, sensor blobs, markers: not logs
        if len(parts) != 2 or not all(_SAFE_NAME.match(p) for p in parts):
            rejected.append(key)
            continue
        if splits and parts[0] not in splits:
            continue
        logs.append(RemoteLog(rel, key, obj.tag, obj.size))
    return logs, rejected


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        logs = data["logs"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a manifest of ingested logs (field 'logs'): {exc}") from None
    if not isinstance(logs, dict):
        raise ValueError(f"{path}: field 'logs' must be a mapping of <split>/<log> to etag and size")
    return logs


def write_manifest(folder: Path, source: str, logs: dict[str, dict[str, Any]]) -> None:
    path = folder / MANIFEST
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"version": 1, "source": source, "logs": dict(sorted(logs.items()))}, indent=1) + "\n")
    os.replace(tmp, path)


def is_seen(log: RemoteLog, manifest: dict[str, dict[str, Any]], folder: Path) -> bool:
    entry = manifest.get(log.rel)
    if not entry or entry.get("etag") != log.etag or entry.get("size") != log.size:
        return False
    local = folder / log.rel
    return local.is_file() and local.stat().st_size == log.size


def download(bucket: str, log: RemoteLog, folder: Path) -> None:
    target = folder / log.rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    try:
        n = fetch_uri(f"s3://{bucket}/{log.key}", tmp).stat().st_size
        if n != log.size:
            raise OSError(f"s3://{bucket}/{log.key}: got {n} bytes, the listing said {log.size}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_local_copy(root: Path, dest: str, remote: dvc_remote.RemoteConfig | None = None) -> None:
    """On a fresh checkout the tracked folder is only a .dvc file: pull it, so 'seen' means seen."""
    if not (root / dest).exists() and (root / f"{dest}.dvc").exists():
        dvc_remote.pull(root, [dest], remote)


def ingest(repo_root: str | Path, p: IngestLogsParams, log=print,
           remote: dvc_remote.RemoteConfig | None = None) -> IngestReport:
    """Steps 1-4 without Prefect (the flow adds the trigger); returns what was taken. `remote`: the run's
    DVC remote (dvc_remote.run_remote), None for the repository's default."""
    root = Path(repo_root).resolve()
    folder = root / p.dest_dir
    source = f"s3://{p.bucket}/{p.prefix.strip('/')}"
    report = IngestReport(source, p.dest_dir)
    ensure_local_copy(root, p.dest_dir, remote)
    manifest = read_manifest(folder)
    logs, report.rejected = list_remote_logs(p.bucket, p.prefix, p.splits)
    for key in report.rejected:
        log(f"skipped {key}: not <prefix>/<split>/<name>.pkl with plain names")
    new = [x for x in logs if not is_seen(x, manifest, folder)]
    report.seen = len(logs) - len(new)
    if p.max_new_per_run:
        new = new[: p.max_new_per_run]
    for i, item in enumerate(new, 1):
        download(p.bucket, item, folder)
        manifest[item.rel] = {"etag": item.etag, "size": item.size, "key": item.key,
                              "ingested_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        log(f"[{i}/{len(new)}] {item.rel} ({item.size} bytes)")
    report.new = [x.rel for x in new]
    if new:
        write_manifest(folder, source, manifest)
        splits = sorted({x.rel.split("/")[0] for x in new})
        message = f"data: ingest {len(new)} new log(s) from {source} ({', '.join(splits)})"
    elif p.commit and dvc_remote.needs_recording(root, p.dest_dir):
        report.recovered = True
        message = f"data: record logs from {source} left uncommitted by an interrupted run"
    else:
        return report
    report.commit = dvc_remote.track_and_commit(root, p.dest_dir, message, commit=p.commit)
    if p.commit and p.git_push:
        dvc_remote.git(root, "push")
    if p.push:
        report.pushed = dvc_remote.push(root, [p.dest_dir], remote)
    return report


@flow(name="ingest-new-logs", log_prints=True)
def ingest_new_logs(
    repo_root: str = ".",
    bucket: str | None = None,
    prefix: str | None = None,
    splits: list[str] | None = None,
    trigger: Literal["subflow", "deployment", "none"] | None = None,
    retrain_deployment: str | None = None,
    retrain_stages: list[str] | None = None,
    configure_remote: bool = True,
) -> dict[str, Any]:
    """Take new logs from S3 into a new DVC data version and start a retrain when there were any.

    Arguments left as None come from params.yaml (ops.ingest). `trigger`: "subflow" runs the retrain
    here; "deployment" starts `retrain_deployment` on the Prefect server and returns without waiting;
    "none" only ingests. `retrain_stages` limits the retrain to those stages (None: every stage).
    """
    logger = get_run_logger()
    ops = load_ops_params(repo_root)
    overrides = {k: v for k, v in {"bucket": bucket, "prefix": prefix, "splits": splits, "trigger": trigger,
                                   "retrain_deployment": retrain_deployment}.items() if v is not None}
    p = IngestLogsParams.model_validate({**ops.ingest.model_dump(), **overrides})
    remote = dvc_remote.run_remote(ops.remote) if configure_remote else None  # in memory, for this run only
    logger.info("DVC remote: %s", f"{remote.name} -> {remote.url}" if remote else "repository default")
    report = ingest(repo_root, p, log=logger.info, remote=remote)
    logger.info("%d new log(s), %d already seen, commit %s, %d file(s) pushed",
                len(report.new), report.seen, report.commit, report.pushed)
    changed = bool(report.new) or report.recovered
    if changed and p.trigger == "subflow":
        from flows.deployments import retrain_routed

        retrain_routed(repo_root=repo_root, stages=retrain_stages)
        report.triggered = "subflow"
    elif changed and p.trigger == "deployment":
        from prefect.deployments import run_deployment

        parameters = {"stages": retrain_stages} if retrain_stages else {}
        # start it and return: the retrain reports on its own run
        run = run_deployment(p.retrain_deployment, parameters=parameters, timeout=0)
        report.triggered = f"deployment {p.retrain_deployment} (flow run {run.id})"
    return report.as_dict()
