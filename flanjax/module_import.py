"""Researchers' own task modules: `--module_import=NAME` and the MIXTURE_OR_TASK_MODULE
gin macro (T5X's conventions).

A module (or package) that registers tasks and mixtures with `flanjax.data.registry`
lives anywhere on PYTHONPATH or in the current folder; importing it before tasks are
resolved is all it takes. The shipped `flanjax.tasks` is imported first, so a module's
mixtures may name the built-in and FLAN tasks.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable


def import_modules(names: Iterable[str]) -> list[str]:
    """Imports `flanjax.tasks`, then each module of `names` once (the current folder is
    searched after sys.path); returns the names. A module that is not found is refused
    with its name and where it was looked for."""
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        return []
    import flanjax.tasks  # noqa: F401  (the built-in and FLAN tasks first)

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    importlib.invalidate_caches()  # files written since the last import are seen
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                raise ValueError(
                    f"module_import {name!r}: no module named {e.name!r} in the current "
                    f"folder ({cwd}) or on PYTHONPATH"
                ) from e
            raise ValueError(f"module_import {name!r}: while importing it: {e}") from e
    return names
