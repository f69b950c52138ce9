"""Every dataclass of the package has a docstring of its own.

Python 3.11's `dataclass` gives a class without one a docstring made from
`inspect.signature(cls)`, at import: ~65 us a class, ~2 ms of the imports every
`apply --wait` pays before its first instance starts (issue 15).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import backfill_ctl


def test_every_dataclass_has_its_own_docstring() -> None:
    generated = []
    modules = 0
    for info in pkgutil.walk_packages(backfill_ctl.__path__, "backfill_ctl."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency (kubernetes, psycopg) is missing
            continue
        modules += 1
        for value in vars(module).values():
            if not (inspect.isclass(value) and dataclasses.is_dataclass(value)):
                continue
            name = f"{value.__module__}.{value.__qualname__}"
            if value.__module__ == module.__name__:
                signature = f"{value.__name__}("  # what dataclass writes for a class without
                if (value.__doc__ or "").startswith(signature):
                    generated.append(name)
    assert modules > 100
    assert generated == []
