"""Package attributes imported on first use, so ``import mars_action.<stage>.commands``
(which runs the package's ``__init__``) does not load torch, OpenCV or PyAV.

``mars --help`` imports every stage's ``commands`` module to list the subcommands;
with eager re-exports in each ``__init__`` that alone took seconds.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, table: dict[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` re-exporting ``table``'s names.

    Args:
        package: the package's ``__name__``.
        table: module -> the names the package re-exports from it.

    A name is imported from its module the first time it is read (PEP 562), then
    kept in the package's namespace, so ``from mars_action.data import build_dataset``
    works as with an eager import.
    """
    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__, sorted(where)
