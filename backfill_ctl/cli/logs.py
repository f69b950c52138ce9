"""`backfillctl logs ID [-f] [--attempt N] [--tail N] [--since D] [--timestamps]`.

The output of an instance's attempt. The text comes from the backend
(`Backend.log_text`), given the handle and log path the attempt recorded; the backend is
the one that ran the attempt. `-f` polls every half second and prints what was added,
until the attempt has ended; a log that shrank (cut by gc) is printed again from its
start. The lines carry no times of their own: what `--since` and `--timestamps` make of
when the log was written is usecases.log_lines.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.cli.console import err
from backfill_ctl.cli.durations import seconds_of
from backfill_ctl.cli.get import find_instance
from backfill_ctl.cli.state import StateOpt, backend_for, open_state
from backfill_ctl.errors import UsageError
from backfill_ctl.usecases import log_lines
from backfill_ctl.usecases.progress import age, utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from backfill_ctl.backends import Backend
    from backfill_ctl.core.records import AttemptRecord
    from backfill_ctl.state import ReadStore

FOLLOW_INTERVAL = 0.5  # seconds between two reads of a followed log
_sleep = time.sleep  # tests replace it to write to the log between polls
clock = time.time  # tests pin it


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
    out: Callable[[str], None],
) -> tuple[AttemptRecord, str]:
    """Print (`out`) what the attempt's log gains until the attempt ends (or `limit`
    polls); the attempt and the log as last read."""
    polls = 0
    while current.finished_at is None and (limit is None or polls < limit):
        _sleep(FOLLOW_INTERVAL)
        polls += 1
        current = next(a for a in store.attempts(ident) if a.number == current.number)
        now = runner.log_text(current.handle, current.log)
        out(now[len(text) :] if now.startswith(text) else now)
        text = now
    return current, text


def _last_write(current: AttemptRecord) -> float:
    """When the attempt's log last changed: its file's modification time, else the
    attempt's end, else now."""
    if current.log:
        try:
            return Path(current.log).stat().st_mtime
        except OSError:
            pass
    return current.finished_at if current.finished_at is not None else clock()


def _chosen(store: ReadStore, ident: str, attempt: int | None) -> AttemptRecord:
    """The attempt `attempt` (default: the latest) of the instance `ident`."""
    record = find_instance(store, ident)
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
    return next(a for a in attempts if a.number == number)


TailOpt = Annotated[
    int | None,
    typer.Option(
        "--tail",
        metavar="N",
        help="Only the last N lines of what is written so far (-f then prints all that comes).",
        show_default=False,
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DURATION",
        help="Only if the log was written within DURATION (like 10m, 2h). Lines carry no "
        "times: a log last changed earlier prints nothing, one written across the cut "
        "prints whole.",
        show_default=False,
    ),
]
TimestampsOpt = Annotated[
    bool,
    typer.Option(
        "--timestamps",
        help="Prefix each line with the time (UTC) it was written by: the log's last "
        "change for what was there, the time -f read it for what comes.",
    ),
]


def logs_command(
    instance: Annotated[
        str, typer.Argument(metavar="ID", help="The instance (ID or instance/ID).")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output until it ends.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option(
            "--attempt", metavar="N", help="This attempt (default: the latest).", show_default=False
        ),
    ] = None,
    tail: TailOpt = None,
    since: SinceOpt = None,
    timestamps: TimestampsOpt = False,
    follow_limit: Annotated[int | None, typer.Option("--follow-limit", hidden=True)] = None,
    state: StateOpt = None,
) -> None:
    """Print the log of an instance's latest attempt (or --attempt N).

    \b
    Examples:
      backfillctl logs a1b2c3                     # the latest attempt's output
      backfillctl logs instance/a1b2c3 --attempt 1
      backfillctl logs a1b2c3 --tail 20 -f        # the last 20 lines, then what comes
      backfillctl logs a1b2c3 --since 10m --timestamps
    """
    cutoff = None if (window := seconds_of("--since", since)) is None else clock() - window
    store = open_state(state)
    current = _chosen(store, instance, attempt)
    runner = backend_for(current.backend, store)  # the one that ran it
    text = runner.log_text(current.handle, current.log)
    written = log_lines.Written(current.started_at, _last_write(current))
    shown = log_lines.tail(text if log_lines.within(written, cutoff) else "", tail)
    stamp = log_lines.Stamper()

    def out(new: str, at: float | None = None) -> None:
        _write(stamp(new, clock() if at is None else at) if timestamps else new)

    out(shown, written.last)
    if text and not log_lines.within(written, cutoff):
        err(
            f"note: the log of attempt {current.number} of {current.instance} was last "
            f"written {age(clock() - written.last)} ago ({utc(written.last)}), before "
            f"--since {since}"
        )
    if follow:
        current, text = _follow(store, runner, current.instance, current, text, follow_limit, out)
    if not text:
        where = ""
        if current.log:
            missing = not Path(current.log).exists()
            where = f" ({current.log}{' does not exist' if missing else ''})"
        err(f"note: attempt {current.number} of {current.instance} has no output{where}")
