"""Unpickling without code execution for files that come from elsewhere.

A pickle can name any importable callable and have the loader call it. This loader resolves only the
few globals plain numpy data needs (arrays, dtypes, scalars) from a fixed table; every other global is
refused before anything is imported or called. Containers, numbers and strings need no globals.

Sizes are bounded before anything is allocated: every way the allowed globals can make numpy allocate
(`ndarray(shape, dtype)`, `_reconstruct`, the array's `__setstate__`, `_frombuffer`) has its shape and
dtype checked against `max_array_elements` first, and `bytes(n)` / `bytearray(n)` of a number are
refused. A pickle of a few hundred bytes can otherwise ask for gigabytes.
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


DEFAULT_MAX_ARRAY_ELEMENTS = 10_000_000
_MAX_ITEMSIZE = 64  # bytes per element counted against the cap (a huge void / string dtype counts as this many elements)


class ArrayTooLargeError(UnsafePickleError):
    """The pickle asks for an array beyond the element cap; nothing was allocated."""


def _check_array(shape: Any, dtype: Any, limit: int, source: str) -> None:
    """Refuse a shape / dtype whose array would exceed `limit` elements (before numpy allocates it)."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if not isinstance(dims, (tuple, list)) or not all(isinstance(d, (int, np.integer)) for d in dims):
        raise UnsafePickleError(source, "<pickle>", f"array shape is not a tuple of integers: {type(shape).__name__}")
    n = 1
    for d in dims:
        if d < 0:
            raise UnsafePickleError(source, "<pickle>", f"negative array dimension in {tuple(dims)!r:.80}")
        n *= int(d)
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise UnsafePickleError(source, "<pickle>", f"bad array dtype: {exc}") from None
    # itemsize counts a sub-array dtype's elements too; scale so an 8-byte float is one element
    weight = max(1, -(-dt.itemsize // 8))
    if dt.itemsize > _MAX_ITEMSIZE * 8 or n * weight > limit:
        raise ArrayTooLargeError(
            source, "<pickle>",
            f"array of shape {tuple(int(d) for d in dims)!r:.80} and dtype {dt.str} exceeds the limit of {limit} elements",
        )


class _Guards:
    """The allowed numpy / builtin callables, each checking sizes before it allocates."""

    def __init__(self, limit: int, source: str) -> None:
        self.limit, self.source = limit, source

        class CheckedArray(np.ndarray):
            """What _reconstruct builds: its __setstate__ (the pickle's BUILD) checks before allocating.

            safe_loads turns every one back into a plain ndarray before returning.
            """

            def __setstate__(arr, state: Any) -> None:  # noqa: N805
                if not isinstance(state, tuple) or len(state) not in (4, 5):
                    raise UnsafePickleError(source, "<pickle>", "array state is not a 4- or 5-tuple")
                shape, dtype = state[-4], state[-3]
                _check_array(shape, dtype, limit, source)
                super().__setstate__(state)

        self.array_type = CheckedArray

    def ndarray(self, shape: Any = (0,), dtype: Any = float, *args: Any, **kwargs: Any) -> np.ndarray:
        _check_array(shape, dtype, self.limit, self.source)
        return np.ndarray(shape, dtype, *args, **kwargs)

    def reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype != self.ndarray:  # bound methods compare equal, never identical
            raise UnsafePickleError(self.source, "<pickle>", "refused array subtype (only numpy.ndarray)")
        _check_array(shape, np.uint8 if isinstance(dtype, bytes) else dtype, self.limit, self.source)
        return _multiarray._reconstruct(self.array_type, shape, dtype)

    def frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        _check_array(shape, dtype, self.limit, self.source)
        return _numeric._frombuffer(buf, dtype, shape, order)

    def _no_count(self, kind: type, args: tuple[Any, ...]) -> Any:
        if args and isinstance(args[0], (int, np.integer)) and not isinstance(args[0], bool):
            raise UnsafePickleError(self.source, "<pickle>", f"refused {kind.__name__}(<count>) (would allocate)")
        return kind(*args)

    def bytes_(self, *args: Any) -> bytes:
        return self._no_count(bytes, args)

    def bytearray_(self, *args: Any) -> bytearray:
        return self._no_count(bytearray, args)

    def table(self) -> dict[tuple[str, str], Any]:
        table: dict[tuple[str, str], Any] = {}
        # numpy 1.x writes numpy.core.*, numpy 2.x writes numpy._core.*: both resolve to this numpy.
        for core in ("numpy.core", "numpy._core"):
            table[(f"{core}.multiarray", "_reconstruct")] = self.reconstruct
            table[(f"{core}.multiarray", "scalar")] = _multiarray.scalar
            # protocol 5 pickles contiguous arrays through _frombuffer
            table[(f"{core}.numeric", "_frombuffer")] = self.frombuffer
        table[("numpy", "ndarray")] = self.ndarray
        table[("numpy", "dtype")] = np.dtype
        # protocol <= 2 writes bytes as _codecs.encode(str, "latin1") and sets through the builtin
        table[("_codecs", "encode")] = _codecs.encode
        for builtins_name in ("builtins", "__builtin__"):
            table[(builtins_name, "set")] = set
            table[(builtins_name, "frozenset")] = frozenset
            table[(builtins_name, "bytearray")] = self.bytearray_
            table[(builtins_name, "bytes")] = self.bytes_
        return table


ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(_Guards(1, "").table())


def _plain(obj: Any, array_type: type, seen: dict[int, Any]) -> Any:
    """obj with every CheckedArray turned back into a plain ndarray (shared and cyclic parts kept)."""
    if type(obj) is array_type:
        return obj.view(np.ndarray)
    oid = id(obj)
    if oid in seen:
        return seen[oid]
    if isinstance(obj, list):
        seen[oid] = obj
        obj[:] = [_plain(v, array_type, seen) for v in obj]
    elif isinstance(obj, dict):
        seen[oid] = obj
        for k in list(obj):
            obj[k] = _plain(obj[k], array_type, seen)
    elif isinstance(obj, tuple):
        out = tuple(_plain(v, array_type, seen) for v in obj)
        seen[oid] = out
        return out
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        seen[oid] = obj
        for i, v in enumerate(obj.flat):
            obj.flat[i] = _plain(v, array_type, seen)
    return obj


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class admits only the allowed globals, size-checked; `source` names the
    file in errors; arrays beyond `max_array_elements` elements are refused before allocation."""

    def __init__(
        self,
        file: io.BufferedIOBase | io.BytesIO,
        source: str = "<bytes>",
        max_array_elements: int = DEFAULT_MAX_ARRAY_ELEMENTS,
    ) -> None:
        super().__init__(file)
        self.source = source
        self._guards = _Guards(max_array_elements, source)
        self._table = self._guards.table()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._table[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                self.source, "<pickle>", f"refused global '{module}.{name}' (not numpy data)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self.source, "<pickle>", "refused persistent id")

    def load(self) -> Any:
        return _plain(super().load(), self._guards.array_type, {})


def safe_loads(data: bytes, source: str = "<bytes>", max_array_elements: int = DEFAULT_MAX_ARRAY_ELEMENTS) -> Any:
    return SafeUnpickler(io.BytesIO(data), source=source, max_array_elements=max_array_elements).load()


def safe_load(
    path: str | Path, max_array_elements: int = DEFAULT_MAX_ARRAY_ELEMENTS, max_bytes: int | None = None
) -> Any:
    """Load one pickle file with SafeUnpickler. Other unpickling failures propagate unchanged.

    With max_bytes, the file must be a regular file of at most that size (read_limited).
    """
    if max_bytes is not None:
        from drivefine_core.storage.safe_paths import read_limited

        return safe_loads(read_limited(path, max_bytes), str(path), max_array_elements)
    with open(path, "rb") as fh:
        return SafeUnpickler(fh, source=str(path), max_array_elements=max_array_elements).load()
