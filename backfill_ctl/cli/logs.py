"""`backfillctl logs ID [-f] [--attempt N]`: the output of an instance's attempt.

The text comes from the backend (`Backend.log_text`), given the handle and log path the
attempt recorded. `logs` reads no specs, so the backend is `--backend` (default local,
which reads the recorded log file). `-f` polls every half second and prints what was
added, until the attempt has ended; a log that shrank (cut by gc) is printed again from
its start.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.cli.console import err
from backfill_ctl.cli.get import find_instance
from backfill_ctl.cli.state import StateOpt, backend_for, open_state
from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from backfill_ctl.backends import Backend
    from backfill_ctl.core.records import AttemptRecord
    from backfill_ctl.state import ReadStore

FOLLOW_INTERVAL = 0.5  # seconds between two reads of a followed log
_sleep = time.sleep  # tests replace it to write to the log between polls


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _follow(
    store: ReadStore,
    runner: Backend,
    ident: str,
    current: AttemptRecord,
    text: str,
    limit: int | None,
) -> tuple[AttemptRecord, str]:
    """Print what the attempt's log gains until the attempt ends (or `limit` polls);
    the attempt and the log as last read."""
    polls = 0
    while current.finished_at is None and (limit is None or polls < limit):
        _sleep(FOLLOW_INTERVAL)
        polls += 1
        current = next(a for a in store.attempts(ident) if a.number == current.number)
        now = runner.log_text(current.handle, current.log)
        _write(now[len(text) :] if now.startswith(text) else now)
        text = now
    return current, text


def logs_command(
    instance: Annotated[
        str, typer.Argument(metavar="ID", help="The instance (ID or instance/ID).")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output until it ends.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", help="This attempt (default: the latest).", show_default=False),
    ] = None,
    follow_limit: Annotated[int | None, typer.Option("--follow-limit", hidden=True)] = None,
    state: StateOpt = None,
) -> None:
    """Print the log of an instance's latest attempt (or --attempt N)."""
    store = open_state(state)
    record = find_instance(store, instance)
    attempts = store.attempts(record.id)
    if not attempts:
        raise UsageError(
            f"instance {record.id} has not run yet (it is {record.state})",
            hint=f"backfillctl describe instance/{record.id} says why it waits",
        )
    numbers = [a.number for a in attempts]
    number = attempt if attempt is not None else numbers[-1]
    if number not in numbers:
        raise UsageError(
            f"instance {record.id} has no attempt {number}",
            hint=f"its attempts are {', '.join(map(str, numbers))}",
        )
    current = next(a for a in attempts if a.number == number)
    runner = backend_for(current.backend, store)  # the one that ran it
    text = runner.log_text(current.handle, current.log)
    _write(text)
    if follow:
        current, text = _follow(store, runner, record.id, current, text, follow_limit)
    if not text:
        where = ""
        if current.log:
            missing = not Path(current.log).exists()
            where = f" ({current.log}{' does not exist' if missing else ''})"
        err(f"note: attempt {number} of {record.id} has no output{where}")
