"""Package names that load on first use (PEP 562), so that importing one light submodule of a package
(its params.py, say) does not import the heavy ones (torch, pandas, boto3) its __init__ re-exports.

A package using this lists the same names under `if TYPE_CHECKING:` as plain imports: type checkers
and flows/dvc_deps.py read them there.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose names come from modules: {name: module}."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
