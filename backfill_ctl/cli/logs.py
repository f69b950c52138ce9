"""`backfillctl logs ID [-f] [--attempt N] [--tail N] [--since D] [--timestamps]`.

The output of an instance's attempt. The text comes from the backend
(`Backend.log_text`), given the handle and log path the attempt recorded; the backend is
the one that ran the attempt. Where that file is not (a laptop or a pipeline reading a
PostgreSQL store), a finished attempt's log is the store's copy of its end
(usecases/attempt_logs.py: the last MiB, and a note when its start is left out); a
running one is said to run elsewhere, with where (a pod's log the kubernetes backend
still reads). `-f` polls every half second and prints what was added,
until the attempt has ended; a log that shrank (cut by gc) is printed again from its
start. A log file here is read by bytes (usecases/log_reading.py): `--tail` from its
end, `-f` only what was appended, whole characters only, so a log of gigabytes is never
read whole, nor again at every poll. The lines carry no times of their own: what
`--since` and `--timestamps` make of when the log was written is usecases.log_lines. A
log is read beside the store, where its checkout is now (a checkout that moved:
backends/files.py), else where it was written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.backends.files import RunFiles
from backfill_ctl.cli.console import err
from backfill_ctl.cli.durations import seconds_of
from backfill_ctl.cli.get import find_instance
from backfill_ctl.cli.state import StateOpt, backend_for, open_state
from backfill_ctl.errors import UsageError
from backfill_ctl.usecases import log_lines
from backfill_ctl.usecases.attempt_logs import shares_logs
from backfill_ctl.usecases.log_reading import Follower, size_of, start_of_last_lines
from backfill_ctl.usecases.progress import age, log_removed, utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from backfill_ctl.backends import Backend
    from backfill_ctl.core.records import AttemptRecord, InstanceRecord
    from backfill_ctl.state import StateStore

FOLLOW_INTERVAL = 0.5  # seconds between two reads of a followed log
_ANCHOR = 4096  # the end of what was printed, looked for in a log whose head was cut
_COPY_POLLS = 6  # polls for a shared store's copy of a log, after its attempt ended
_sleep = time.sleep  # tests replace it to write to the log between polls
clock = time.time  # tests pin it


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _log(store: StateStore, current: AttemptRecord) -> str | None:
    """Where the attempt's log file is read (`RunFiles.readable`), if it has one."""
    return RunFiles.of(store).readable(current.log) if current.log else None


def _here(store: StateStore, current: AttemptRecord) -> bool:
    """Whether the attempt's log file is on this machine."""
    log = _log(store, current)
    return log is not None and Path(log).exists()


def _text(store: StateStore, runner: Backend, current: AttemptRecord) -> str:
    """The attempt's log: its file when it is here, else the store's copy (a finished
    attempt's, in a shared store), else what the backend finds (a pod's log)."""
    if not _here(store, current):
        kept = store.stored_log(current.instance, current.number)
        if kept is not None:
            return kept.text
    return runner.log_text(current.handle, _log(store, current))


def _file(store: StateStore, current: AttemptRecord) -> str | None:
    """The attempt's log file when the log is read from it (by bytes): it is here, and
    it holds the log (the local backend's always does; the kubernetes backend's copy
    once it is not empty, the pod's log before)."""
    log = _log(store, current)
    size = size_of(log) if log else None
    return log if size is not None and (size or current.backend == "local") else None


class _Source:
    """The log as printed so far: a file read by bytes from where the last read ended
    (`follower`), else the whole text that the backend or the store gives (`text`),
    printed again whole when it does not go on from what was printed."""

    def __init__(self, store: StateStore, runner: Backend, current: AttemptRecord) -> None:
        self.store, self.runner = store, runner
        path = _file(store, current)
        self.follower = Follower(path) if path else None
        self.text = "" if path else _text(store, runner, current)
        self.printed = bool(self.text)

    def first(self, tail: int | None, shown: bool, out: Callable[[str], None]) -> None:
        """Print what is there (its last `tail` lines), when `shown`; else skip it."""
        if self.follower is None:
            out(log_lines.tail(self.text, tail) if shown else "")
            return
        path = self.follower.path
        end = size_of(path) or 0
        self.printed = end > 0
        self.follower.offset = start_of_last_lines(path, tail, end) if shown else end
        for piece in self.follower.pieces(end):
            out(piece)

    def more(self, current: AttemptRecord) -> str:
        """What was added since the last read (all of it again when it was cut)."""
        if self.follower is None and not self.printed:  # its file may have come
            path = _file(self.store, current)
            self.follower = Follower(path) if path else None
        if self.follower is not None:
            new = self.follower.read()
            if current.finished_at is not None:
                new += self.follower.flush()
        else:
            now = _text(self.store, self.runner, current)
            new = _added(self.text, now)
            self.text = now
        self.printed = self.printed or bool(new)
        return new


def _added(before: str, now: str) -> str:
    """What `now` adds to `before` (printed already): what follows it; where `now` is a
    window that slid (a running pod's log past maxLogSize, its head cut), what follows
    the end of `before` in it; all of `now` where it holds none of it (a new log)."""
    if now.startswith(before):
        return now[len(before) :]
    anchor = before[-_ANCHOR:]
    at = now.find(anchor) if anchor else -1
    return now[at + len(anchor) :] if at >= 0 else now


def _follow(
    store: StateStore,
    source: _Source,
    ident: str,
    current: AttemptRecord,
    limit: int | None,
    out: Callable[[str], None],
) -> AttemptRecord:
    """Print (`out`) what the attempt's log gains until the attempt ends (or `limit`
    polls); the attempt as last read. A log that runs elsewhere is printed when its end
    is in the store (written just after the attempt's end)."""
    polls, late = 0, 0
    while limit is None or polls < limit:
        if current.finished_at is not None:
            elsewhere = not _here(store, current) and shares_logs(store)
            if source.printed or not elsewhere or late >= _COPY_POLLS:
                break
            late += 1
        _sleep(FOLLOW_INTERVAL)
        polls += 1
        current = next(a for a in store.attempts(ident) if a.number == current.number)
        out(source.more(current))
    return current


def _last_write(store: StateStore, current: AttemptRecord) -> float:
    """When the attempt's log last changed: its file's modification time, else the
    attempt's end, else now."""
    log = _log(store, current)
    if log:
        try:
            return Path(log).stat().st_mtime
        except OSError:
            pass
    return current.finished_at if current.finished_at is not None else clock()


def _chosen(store: StateStore, ident: str, attempt: int | None) -> AttemptRecord:
    """The attempt `attempt` (default: the latest) of the instance `ident`."""
    record = find_instance(store, ident)
    attempts = store.attempts(record.id)
    if not attempts:
        raise _never_ran(record)
    numbers = [a.number for a in attempts]
    number = attempt if attempt is not None else numbers[-1]
    if number not in numbers:
        raise UsageError(
            f"instance {record.id} has no attempt {number}",
            hint=f"its attempts are {', '.join(map(str, numbers))}",
        )
    return next(a for a in attempts if a.number == number)


def _never_ran(record: InstanceRecord) -> UsageError:
    """Why an instance without an attempt has no log: it waits (describe says for what),
    or it ends without running (a dry-run, cancelled, set succeeded)."""
    why = f" ({record.reason})" if record.reason else ""
    if record.dry_run:
        text = f"is a dry-run ({record.dry_run_reason}): nothing ran, so it has no log"
    elif record.state == "cancelled":
        text = f"was cancelled before it ran{why}: it has no log"
    elif record.state in ("succeeded", "failed"):
        text = f"was set {record.state} without running{why}: it has no log"
    else:
        return UsageError(
            f"instance {record.id} has not run yet (it is {record.state})",
            hint=f"backfillctl describe instance/{record.id} says why it waits",
        )
    return UsageError(
        f"instance {record.id} {text}", hint=f"backfillctl describe instance/{record.id} says why"
    )


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
    source = _Source(store, runner, current)
    written = log_lines.Written(current.started_at, _last_write(store, current))
    stamp = log_lines.Stamper()

    def out(new: str, at: float | None = None) -> None:
        _write(stamp(new, clock() if at is None else at) if timestamps else new)

    shown = log_lines.within(written, cutoff)
    source.first(tail, shown, lambda text: out(text, written.last))
    if source.printed and not shown:
        err(
            f"note: the log of attempt {current.number} of {current.instance} was last "
            f"written {age(clock() - written.last)} ago ({utc(written.last)}), before "
            f"--since {since}"
        )
    if follow:
        current = _follow(store, source, current.instance, current, follow_limit, out)
    if source.follower is not None and current.finished_at is not None:
        out(source.follower.flush())  # the start of a character whose end never came
    for note in _notes(store, current, source.printed):
        err(f"note: {note}")


def _notes(store: StateStore, current: AttemptRecord, printed: bool) -> list[str]:
    """What the reader should know of where the log shown came from, or why there is
    none."""
    which = f"attempt {current.number} of {current.instance}"
    log = _log(store, current)
    if not _here(store, current):
        kept = store.stored_log(current.instance, current.number)
        if kept is not None:
            where = f" (the whole log: {current.log}, where it ran)" if current.log else ""
            return (
                [
                    f"the store keeps the end of the log of {which}: its last "
                    f"{_size(kept.size - kept.cut)} of {_size(kept.size)}{where}"
                ]
                if kept.cut
                else []
            )
        if current.finished_at is None and not printed and shares_logs(store):
            return [f"{which} runs elsewhere: {_runs_where(store, current)}"]
    if printed:
        return []
    if removed := log_removed(current):
        return [f"the log of {which} was {removed}"]
    where = ""
    if log:
        where = f" ({log}{'' if _here(store, current) else ' does not exist'})"
    return [f"{which} has no output{where}"]


def _runs_where(store: StateStore, current: AttemptRecord) -> str:
    """Where a running attempt whose log is not here runs (a shared store's), and when
    its log is readable."""
    job = current.handle.get("job")
    if job:
        place = f"as the Job {job} in namespace {current.handle.get('namespace', '?')}"
    else:
        lease = store.lease()
        holder = f"{lease.holder} on {lease.host}" if lease else "that started it"
        place = f"on the machine of the controller ({holder})"
    return (
        f"{place}, its log {current.log or '(none yet)'} there; the store keeps the end "
        "of its log when it ends (logs -f waits for it)"
    )


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
