"""Resumable training checkpoints: one file, written atomically (temp name in the same directory, then
os.replace), so a run killed while saving leaves the previous checkpoint intact."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FILE = "last.pt"
FORMAT = "drivefine-train-state/1"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
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
        # our own file with numpy / python RNG states inside: weights_only cannot hold those
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: unreadable training checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: field 'format' is {state.get('format') if isinstance(state, dict) else None!r}, "
                         f"expected {FORMAT!r}")
    for key in ("step", "model", "optimizer", "scheduler", "rng"):
        if key not in state:
            raise ValueError(f"{path}: training checkpoint lacks field '{key}'")
    return state
