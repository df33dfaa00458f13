"""Unpickling without code execution for files that come from elsewhere.

A pickle can name any importable callable and have the loader call it. This loader resolves only the
few globals plain numpy data needs (arrays, dtypes, scalars) from a fixed table; every other global is
refused before anything is imported or called. Containers, numbers and strings need no globals.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from drivefine_core.data.errors import UnsafePickleError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

import _codecs


def _allowed_table() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {}
    # numpy 1.x writes numpy.core.*, numpy 2.x writes numpy._core.*: both resolve to this numpy.
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        table[(f"{core}.multiarray", "scalar")] = _multiarray.scalar
        # protocol 5 pickles contiguous arrays through _frombuffer
        table[(f"{core}.numeric", "_frombuffer")] = _numeric._frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    # protocol <= 2 writes bytes as _codecs.encode(str, "latin1") and sets through the builtin
    table[("_codecs", "encode")] = _codecs.encode
    for builtins_name in ("builtins", "__builtin__"):
        table[(builtins_name, "set")] = set
        table[(builtins_name, "frozenset")] = frozenset
        table[(builtins_name, "bytearray")] = bytearray
        table[(builtins_name, "bytes")] = bytes
    return table


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed_table()


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class admits only ALLOWED_GLOBALS; `source` names the file in errors."""

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, source: str = "<bytes>") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                self.source, "<pickle>", f"refused global '{module}.{name}' (not numpy data)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self.source, "<pickle>", "refused persistent id")


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    return SafeUnpickler(io.BytesIO(data), source=source).load()


def safe_load(path: str | Path) -> Any:
    """Load one pickle file with SafeUnpickler. Other unpickling failures propagate unchanged."""
    with open(path, "rb") as fh:
        return SafeUnpickler(fh, source=str(path)).load()
