"""Write OpenScene logs: `<root>/navsim_logs/<split>/<log_name>.pkl`, a plain list[dict] pickle.

Only dicts, lists, tuples, str, int, float, bool, None and numpy arrays of numbers are written (the safe
reader refuses anything else), so every value is checked first and a bad one is reported by frame and key.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_SCALARS = (str, int, float, bool, type(None))


def _check(value: Any, where: str) -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{where}: numpy array of dtype {value.dtype} (only numeric arrays are allowed)")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict key {k!r} is not a string")
            _check(v, f"{where}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not a plain container, number, string or numeric array")


def log_path(root: Path, split: str, log_name: str) -> Path:
    return Path(root) / "navsim_logs" / split / f"{log_name}.pkl"


def write_log(root: Path, split: str, log_name: str, frames: list[dict]) -> Path:
    """Validate and atomically write one log; returns its path."""
    if not frames:
        raise ValueError(f"openscene_writer: log {log_name} has no frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise TypeError(f"openscene_writer: log {log_name} frame {i} is {type(frame).__name__}, not dict")
        _check(frame, f"log {log_name} frame {i}")
    path = log_path(root, split, log_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(frames, fh, protocol=4)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
