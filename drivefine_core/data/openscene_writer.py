"""Write OpenScene logs: `<root>/navsim_logs/<split>/<log_name>.pkl`, a plain list[dict] pickle.

Only dicts, lists, tuples, str, int, float, bool, None and numpy arrays of numbers are written (the safe
reader refuses anything else), so every value is checked first and a bad one is reported by frame and key.

The pickles must load under numpy 1.x as well as 2.x, like the real OpenScene logs (NAVSIM v1.1 pins numpy
1.2x). numpy 2 pickles arrays through `numpy._core.multiarray`, a module numpy 1.x does not have; numpy 1.x
names `numpy.core.multiarray`, which numpy 2 still provides as an alias of the same functions. So the log is
pickled with protocol 3 (globals as GLOBAL opcodes, no frames) and every GLOBAL under `numpy._core.` is
rewritten to the same name under `numpy.core.` (docs/navsim-rules.md, OpenScene pickles).
"""

from __future__ import annotations

import os
import pickle
import pickletools
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


_NUMPY2_CORE = "numpy._core."
_NUMPY1_CORE = "numpy.core."
PICKLE_PROTOCOL = 3  # the highest protocol whose globals are GLOBAL opcodes and that has no frames


def numpy1_globals(data: bytes) -> bytes:
    """Rename the GLOBAL opcodes of a protocol <= 3 pickle from numpy._core.* to numpy.core.*. Without frames,
    a rename only shifts the bytes that follow; memo indexes and every other opcode stay as they are."""
    parts, last = [], 0
    for op, arg, pos in pickletools.genops(data):
        if op.name in ("FRAME", "STACK_GLOBAL"):
            raise ValueError(f"openscene_writer: opcode {op.name} at byte {pos} (expected a protocol <= 3 pickle)")
        if op.name != "GLOBAL" or not arg.startswith(_NUMPY2_CORE):
            continue
        module, name = arg.split(" ", 1)
        old = f"{module}\n{name}\n".encode("ascii")
        end = pos + 1 + len(old)
        if data[pos + 1 : end] != old:  # pragma: no cover - GLOBAL args are module\nname\n by definition
            raise ValueError(f"openscene_writer: unexpected GLOBAL bytes at {pos}")
        parts += [data[last : pos + 1], f"{_NUMPY1_CORE}{module[len(_NUMPY2_CORE):]}\n{name}\n".encode("ascii")]
        last = end
    parts.append(data[last:])
    return b"".join(parts)


def _canonical(value):
    """Arrays re-viewed with numpy's own dtype objects. Pickle memoizes a dtype by identity, and an array that
    came through a pickle (Ray's object store, a spawned worker) has a dtype object of its own: without this
    the same frames would give other bytes there than in a forked worker."""
    if isinstance(value, np.ndarray):
        return value.view(np.dtype(value.dtype.str)) if value.dtype.names is None else value
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_canonical(v) for v in value)
    return value


def dumps_log(frames: list[dict]) -> bytes:
    """The bytes of a log pickle that numpy 1.x and 2.x both load (the same bytes wherever it is written)."""
    return numpy1_globals(pickle.dumps(_canonical(frames), protocol=PICKLE_PROTOCOL))


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
    data = dumps_log(frames)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
