"""Ending the process without tearing the interpreter down.

When a command is done, Python frees its objects one by one, runs a collection, then
tears its modules down: 14 ms of `validate specs/`'s 0.135 s, 28 ms after `apply --wait`
of 300 instances, and ~0.4 s more for a plan of a million instances (freed when the
command returns). All of it spent on memory the process is about to give back whole.
So the console script (`main.console`) ends the process with os._exit once the command
is done (`end_now`), after what a normal ending does that matters: the `atexit`
handlers run, the stores the command opened are closed (a SQLite store's WAL synced
into its file), the output is flushed. A command hands what it built from a large plan
to `keep_until_exit`, so that it is not freed when the command returns either (a small
plan frees in microseconds, and a test's process runs many commands).

Not when another thread runs (the interpreter's ending waits for it, and it may use a
store), nor for a command run in-process (Typer's runner, `main`: tests).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
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


def end_now(code: object) -> None:
    """End the process now with `code` (a SystemExit's: None is 0, a message is written
    and exits 1), as described above; returns when another thread runs."""
    if threading.active_count() > 1:
        return
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()
    from backfill_ctl.state import opened_stores

    for store in opened_stores():
        with contextlib.suppress(Exception):  # (closing: nothing left to report it to)
            store.close()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # (a reader that went away: nothing to say)
            stream.flush()
    os._exit(code or 0)
