"""Resumable training checkpoints: one file, written atomically (temp name in the same directory, then
os.replace), so a run killed while saving leaves the previous checkpoint intact.

The file holds only tensors, numbers, strings and plain containers (the RNG states are converted to
those), so it is read with torch.load(weights_only=True): a checkpoint that carries a pickled Python
object is refused, never run."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FILE = "last.pt"
FORMAT = "drivefine-train-state/2"  # /2: RNG states as tensors (weights-only loadable)


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values (nothing a weights-only load would refuse)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / CHECKPOINT_FILE
    tmp = d / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(directory: str | Path) -> dict[str, Any] | None:
    """The last checkpoint in `directory`, or None when there is none."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = next((ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln), "")[:200]
        if not refused:  # a truncated or corrupt file
            raise ValueError(f"{path}: unreadable training checkpoint: {str(exc).splitlines()[-1][:300]}") from None
        # weights-only refused a global: the file asks to build a Python object, which is never run
        raise ValueError(f"{path}: refused: the checkpoint holds a pickled Python object, not only tensors and "
                         f"plain values ({refused}); delete it to start afresh") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: unreadable training checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: field 'format' is {state.get('format') if isinstance(state, dict) else None!r}, "
                         f"expected {FORMAT!r}")
    for key in ("step", "model", "optimizer", "scheduler", "rng"):
        if key not in state:
            raise ValueError(f"{path}: training checkpoint lacks field '{key}'")
    return state
