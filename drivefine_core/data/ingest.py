"""Ingest: NAVSIM logs (local dir or s3://) -> validated scenes Parquet per split + quarantine report.

Library code: no Prefect, no DVC. One bad log never stops the others; it is quarantined with the file,
field and frame that made it fail.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from drivefine_core.data.errors import DataFormatError
from drivefine_core.data.openscene_reader import load_log
from drivefine_core.data.params import IngestParams
from drivefine_core.data.scene_filter import assign_split, cut_scenes
from drivefine_core.data.schema import Scene
from drivefine_core.data.scenes_io import ScenesWriter
from drivefine_core.executor.core import Executor, WorkerLostError, make_executor
from drivefine_core.storage import download, is_s3, list_prefix
from drivefine_core.storage.local import write_file_atomic
from drivefine_core.storage.safe_paths import safe_name

Validator = Callable[[str, list[Scene]], list[str]]
LOGS_DIR = "navsim_logs"


@dataclass
class QuarantineEntry:
    log: str
    reason: str
    field: str
    frame: int | None
    path: str


@dataclass
class IngestReport:
    logs_read: int = 0  # logs whose scenes were kept
    logs_refused: int = 0
    frames_read: int = 0
    scenes_per_split: dict[str, int] = field(default_factory=dict)
    scene_files: dict[str, str] = field(default_factory=dict)  # split -> parquet path
    scene_digests: dict[str, str] = field(default_factory=dict)  # split -> sha256 of the file
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    quarantine_path: str = ""

    def metrics(self) -> dict[str, float]:
        out = {
            "logs_read": float(self.logs_read),
            "logs_refused": float(self.logs_refused),
            "frames_read": float(self.frames_read),
            "scenes_total": float(sum(self.scenes_per_split.values())),
        }
        out.update({f"scenes_{split}": float(n) for split, n in self.scenes_per_split.items()})
        return out

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _LogSource:
    split_dir: str
    name: str  # file stem
    location: str  # local path or s3 URI, for reports
    size: int | None = None  # bytes, when the listing says (S3)


def _local_logs(root: Path, split_dirs: list[str]) -> list[tuple[_LogSource, Path]]:
    out = []
    for split_dir in split_dirs:
        folder = root / LOGS_DIR / split_dir
        if not folder.is_dir():
            raise FileNotFoundError(f"source_root '{root}': split folder '{LOGS_DIR}/{split_dir}' not found")
        for path in sorted(folder.glob("*.pkl")):
            out.append((_LogSource(split_dir, path.stem, str(path)), path))
    return out


def _s3_logs(uri: str, split_dirs: list[str]) -> list[_LogSource]:
    root = uri.rstrip("/")
    out = []
    for split_dir in split_dirs:
        folder = f"{root}/{LOGS_DIR}/{split_dir}/"
        objects = list_prefix(folder)
        if not objects:  # S3 has no empty folders: nothing there means a wrong root or split name
            raise FileNotFoundError(f"source_root '{uri}': nothing under '{LOGS_DIR}/{split_dir}/'")
        for obj in objects:
            rest = obj.uri[len(folder) :]
            if rest.endswith(".pkl") and "/" not in rest:  # nested folders are not logs of this split
                out.append(_LogSource(split_dir, rest[: -len(".pkl")], obj.uri, obj.size))
    return out


def _log_sources(source_root: str, split_dirs: list[str]) -> list[_LogSource]:
    if is_s3(source_root):
        return _s3_logs(source_root, split_dirs)
    return [src for src, _ in _local_logs(Path(source_root), split_dirs)]


@dataclass
class _ReadLog:
    """One log read and cut into scenes (by a worker), or why it was refused."""

    src: _LogSource
    refused: QuarantineEntry | None = None
    log_name: str = ""
    scenes: list[Scene] = field(default_factory=list)
    frames: int = 0
    failures: list[str] | None = None  # validation messages; None = not validated yet (max_scenes cuts first)


def _read_log(shared: tuple[IngestParams, Validator | None], src: _LogSource) -> _ReadLog:
    """Load, cut and validate one log; runs on the executor's workers. An S3 log is downloaded into a temp
    dir of the worker (one log at a time per worker); one larger than max_log_bytes is not downloaded."""
    params, validate = shared
    if src.size is not None and src.size > params.max_log_bytes:
        reason = f"is {src.size} bytes, over the limit of {params.max_log_bytes} (ingest.max_log_bytes)"
        return _ReadLog(src, QuarantineEntry(src.name, reason, "<file>", None, src.location))
    with tempfile.TemporaryDirectory(prefix="drivefine-ingest-") as tmp:
        try:
            local = download(src.location, Path(tmp) / "log.pkl") if is_s3(src.location) else Path(src.location)
            log = load_log(local, params.require_annotations, params.required_cameras,
                           max_bytes=params.max_log_bytes, max_array_elements=params.max_array_elements)
        except DataFormatError as err:
            return _ReadLog(src, QuarantineEntry(src.name, err.reason, err.field, err.frame, src.location))
        except OSError as err:
            return _ReadLog(src, QuarantineEntry(src.name, f"unreadable: {err}", "<file>", None, src.location))
    # Cut without max_scenes: the caller keeps the first scenes up to the limit across logs, in log order.
    scenes = cut_scenes(log.frames, params.scene_filter, log.log_name, log.map_location, limit=_UNLIMITED)
    validated = validate is not None and params.scene_filter.max_scenes is None
    failures = validate(log.log_name, scenes) if validated and validate is not None else None
    return _ReadLog(src, None, log.log_name, scenes, len(log.frames), failures)


_UNLIMITED = 1 << 62


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_splits(params: IngestParams, split_dirs: list[str]) -> list[str]:
    """The split names; each becomes <out_dir>/scenes/<split>.parquet, so each must be a plain name."""
    for d in split_dirs:
        safe_name(d, "split folder")
    if params.split.mode == "hash":
        names = [params.split.train_name, params.split.test_name]
    else:
        names = [params.split.folder_map.get(d, d) for d in split_dirs]
    return [safe_name(n, "split name") for n in names]


def ingest(
    source_root: str | Path,
    split_dirs: list[str],
    out_dir: str | Path,
    params: IngestParams | None = None,
    progress: bool = True,
    validate: Validator | None = None,
    executor: Executor | None = None,
) -> IngestReport:
    """Read every log under `<source_root>/navsim_logs/<split_dir>/`, cut scenes, write
    `out_dir/scenes/<split>.parquet` and `out_dir/quarantine.json`.

    `validate(log_name, scenes)` may return failure messages; a non-empty list quarantines that log.
    Logs are read, cut and validated on `executor` (default: this process); what depends on the logs before
    them (duplicate names and tokens, max_scenes, the split files) is settled here in log order, so the
    output does not depend on the executor.
    """
    params = params or IngestParams()
    out_dir = Path(out_dir)
    scenes_dir = out_dir / "scenes"
    scenes_dir.mkdir(parents=True, exist_ok=True)
    sources = _log_sources(str(source_root), list(split_dirs))
    report = IngestReport(scenes_per_split={s: 0 for s in _expected_splits(params, list(split_dirs))})
    writers = {s: ScenesWriter(scenes_dir / f"{s}.parquet", params.row_group_scenes) for s in report.scenes_per_split}
    max_scenes = params.scene_filter.max_scenes
    total = 0
    seen_tokens: set[str] = set()
    seen_logs: dict[str, str] = {}  # log_name -> the file it came from
    executor = executor or make_executor()
    try:
        for done in executor.map(_read_log, sources, shared=(params, validate), total=len(sources), desc="ingest logs",
                                 ordered=True, progress=progress):
            if max_scenes is not None and total >= max_scenes:
                break
            src = sources[done.index]
            if isinstance(done.error, WorkerLostError):
                report.quarantine.append(QuarantineEntry(src.name, str(done.error), "<worker>", None, src.location))
                continue
            read = done.result()
            if read.refused is not None:
                report.quarantine.append(read.refused)
                continue
            if read.log_name in seen_logs:  # downstream groups scenes by log_name: two files cannot share one
                reason = f"log_name '{read.log_name}' is also the log_name of {seen_logs[read.log_name]} (kept)"
                report.quarantine.append(QuarantineEntry(src.name, reason, "log_name", None, src.location))
                continue
            scenes = read.scenes if max_scenes is None else read.scenes[: max_scenes - total]
            clashes = sorted({s.token for s in scenes} & seen_tokens)
            if clashes:  # downstream keys rows by scene token
                reason = f"scene tokens already seen in an earlier log: {clashes[:3]}"
                report.quarantine.append(QuarantineEntry(src.name, reason, "token", None, src.location))
                continue
            failures = read.failures
            if failures is None:
                failures = validate(read.log_name, scenes) if validate is not None else []
            if failures:
                report.quarantine.append(QuarantineEntry(src.name, "; ".join(failures), "validation", None, src.location))
                continue
            split = safe_name(assign_split(read.log_name, src.split_dir, params.split), "split name")
            if split not in writers:
                writers[split] = ScenesWriter(scenes_dir / f"{split}.parquet", params.row_group_scenes)
                report.scenes_per_split[split] = 0
            writers[split].write(scenes, split, src.split_dir)
            report.scenes_per_split[split] += len(scenes)
            report.logs_read += 1
            report.frames_read += read.frames
            total += len(scenes)
            seen_tokens.update(s.token for s in scenes)
            seen_logs[read.log_name] = src.location
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for split, writer in writers.items():
        path = writer.close()
        report.scene_files[split] = str(path)
        report.scene_digests[split] = _sha256(path)
    for stale in scenes_dir.glob("*.parquet"):  # splits of an earlier run that this run did not produce
        if stale.stem not in writers:
            stale.unlink()
    report.logs_refused = len(report.quarantine)
    report.quarantine_path = str(out_dir / "quarantine.json")
    write_file_atomic(report.quarantine_path, json.dumps([asdict(q) for q in report.quarantine], indent=2).encode())
    return report
