"""Lazy package exports (PEP 562): a package lists its public names by the module that defines them,
and each module is imported on first use of one of its names.

So ``import pcdarts_core.config`` or ``from pcdarts_core import SearchConfig, parse_genotype`` import
only the settings and the genotype code, not torch; ``from pcdarts_core import Search`` imports the
search and everything it needs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose public names ``exports``
    lists by their defining module (relative to the package, e.g. ``".config"``). A name is
    imported on first access and then kept in the package's namespace."""
    home = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *home})

    return list(home), __getattr__, __dir__
