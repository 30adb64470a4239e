"""Lazy re-exports (PEP 562) for packages whose names pull in optional or heavy libraries."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """
    A module ``__getattr__`` and ``__dir__`` for *package* that import ``modules[name]`` on first use of *name*.

    A module name starting with ``.`` is relative to *package*.
    """

    def getattr_(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def dir_() -> list[str]:
        return sorted(modules)

    return getattr_, dir_
