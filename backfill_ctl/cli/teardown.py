"""Ending the process without freeing what a command built.

A plan of a million instances takes ~0.4 s to free, object by object, when the command
returns, then again what is left when the interpreter ends: time spent on memory the
process is about to give back whole. A command hands such objects to `keep_until_exit`
(only large ones: a small plan frees in microseconds, and a test's process runs many
commands), and `main` ends the process with os._exit once the command is done: its
output flushed first, no `atexit` handler of ours left to run. Commands run in-process
by tests (Typer's runner, not `main`) keep nothing past the command either way.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backfill_ctl.core.planner import Plan

_kept: list[object] = []
LARGE = 100_000  # instances: a plan from which freeing it is worth skipping


def keep_until_exit(plan: Plan, *objects: object) -> None:
    """Keep `plan` and `objects` (what was built with it) until the process ends, if the
    plan is large."""
    if sum(len(bp.instances) for bp in plan.backfills) >= LARGE:
        _kept.extend((plan, *objects))


def exit_now_if_kept(code: object) -> None:
    """With something kept: flush the output and end the process now, with `code`
    (a SystemExit's: None is 0, a message is written and exits 1)."""
    if not _kept:
        return
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # (a reader that went away: nothing to say)
            stream.flush()
    os._exit(code or 0)
