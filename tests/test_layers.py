"""The planning core stays pure: no I/O modules, no clock, no upward imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "backfill_ctl"
CORE = [
    "timeexpr.py",
    "calendar.py",
    "catalog.py",
    "params.py",
    "planner.py",
    "planning.py",
    "reconcile.py",
    "scheduler.py",
    "selection.py",
    "slots.py",
    "validation.py",
]
FORBIDDEN_MODULES = {
    "subprocess",
    "sqlite3",
    "socket",
    "urllib",
    "http",
    "kubernetes",
    "requests",
    "os",
    "shutil",
    "time",
    "random",
}
# (the time module itself is a forbidden import; `.time()` of a datetime is not a clock)
FORBIDDEN_CALLS = {"now", "today", "utcnow"}


def imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_imports_no_io_and_no_upper_layer(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    names = imports(tree)
    assert not {n.split(".")[0] for n in names} & FORBIDDEN_MODULES
    assert not [n for n in names if n.startswith(("backfill_ctl.cli", "backfill_ctl.reports"))]


@pytest.mark.parametrize("module", CORE)
def test_core_reads_no_clock(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    calls = [
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]
    assert not set(calls) & FORBIDDEN_CALLS


def test_the_checker_sees_a_clock_read() -> None:
    tree = ast.parse("import datetime\ndatetime.datetime.now()\n")
    calls = [
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    ]
    assert "now" in calls
