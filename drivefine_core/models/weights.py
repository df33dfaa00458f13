"""Safetensors + config JSON on disk, written atomically; loading with errors that name file and tensor."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write through `write(tmp)` to a temp name in the same directory, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: Path, data: Mapping[str, object]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
    _atomic(path, write)


def save_state(path: Path, state: Mapping[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_state(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several error types for a bad header
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_checked(module: nn.Module, state: Mapping[str, Tensor], source: Path, strict: bool = True) -> list[str]:
    """Copy `state` into `module`, refusing any shape mismatch with a message naming file and tensor.

    strict: every tensor of the module must be in the file and every tensor of the file must be used.
    Non-strict: tensors missing from the file keep their current values (returned), unknown ones are an error.
    """
    own = module.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} tensor(s) the model does not have, e.g. {unknown[:5]}")
    mismatched = [f"'{k}': file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        raise ValueError(f"{source}: shape mismatch for {len(mismatched)} tensor(s) - {'; '.join(mismatched[:5])}. "
                         "Build the model with the ModelParams of the checkpoint (its config.json).")
    missing = sorted(set(own) - set(state))
    if missing and strict:
        raise ValueError(f"{source}: {len(missing)} tensor(s) missing from the file, e.g. {missing[:5]}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
    return missing
