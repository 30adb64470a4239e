"""Lazy re-exports (PEP 562) for packages whose names pull in optional or heavy libraries."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """
    A module ``__getattr__`` and ``__dir__`` for *package* that import ``modules[name]`` on first use of *name*.

    A module name starting with ``.`` is relative to *package*; a name mapped to a module whose last part is that
    name is the module itself. ``dir()`` lists the package's own globals and the lazy names.
    """

    def getattr_(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, package)
        # A name mapped to a module of that same name is the module itself (`voicecoder.errors`).
        return loaded if loaded.__name__.rpartition(".")[2] == name else getattr(loaded, name)

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *modules})

    return getattr_, dir_
