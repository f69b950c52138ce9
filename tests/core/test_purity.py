"""The planning core reads no clock: `now` is passed in.

Which modules the pure layers may import (no I/O, no subprocess, nothing above them) is
import-linter's job (`[tool.importlinter]` in pyproject.toml, run by .ci/run); a call of
`now()`/`today()` needs no import, so it is checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "backfill_ctl"
PURE = sorted(
    [
        *(PACKAGE / "core").glob("*.py"),
        *(PACKAGE / "risks").glob("*.py"),
        PACKAGE / "spec" / "cron.py",
        PACKAGE / "runtime" / "scheduler.py",
        PACKAGE / "usecases" / "reconcile.py",
    ]
)
CLOCK_CALLS = {"now", "today", "utcnow", "time", "monotonic"}


def clock_calls(source: str) -> set[str]:
    tree = ast.parse(source)
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # `.time()` of a datetime is not a clock; `time.time()` is
            if node.func.attr == "time" and not (
                isinstance(node.func.value, ast.Name) and node.func.value.id == "time"
            ):
                continue
            called.add(node.func.attr)
    return called & CLOCK_CALLS


@pytest.mark.parametrize("module", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_modules_read_no_clock(module: Path) -> None:
    assert clock_calls(module.read_text()) == set()


def test_the_checker_sees_clock_reads() -> None:
    source = "import datetime, time\ndatetime.datetime.now()\ntime.monotonic()\nd.time()\n"
    assert clock_calls(source) == {"now", "monotonic"}


def test_the_pure_set_is_not_empty() -> None:
    assert len(PURE) > 10
