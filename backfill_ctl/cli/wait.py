"""`backfillctl wait backfill/NAME... --for=condition=C [--timeout D]`: for CI pipelines.

kubectl-like: it only watches the store (a controller, or `apply --wait`, runs the
backfills), polling every second, with `apply --wait`'s progress line on stderr
(cli.waiting). The conditions and their judgement are usecases.conditions. Exit codes:
0 the condition holds for every backfill named; 1 it can no longer hold for one (it
waited for Succeeded and the backfill failed, or it was deleted); 2 usage errors;
`TIMED_OUT` (124, as timeout(1)) when the time ran out, saying where each backfill is.
A store away for a while is waited for (cli.patience); --timeout still bounds the wait.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.cli.console import err
from backfill_ctl.cli.durations import seconds_of
from backfill_ctl.cli.get import find_backfill
from backfill_ctl.cli.patience import Patience
from backfill_ctl.cli.state import StateOpt, open_state
from backfill_ctl.cli.waiting import Progress, unknown, waiting_lines
from backfill_ctl.usecases import conditions
from backfill_ctl.usecases.progress import describe_counts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.state import StateStore

TIMED_OUT = 124
WAIT_INTERVAL = 1.0  # seconds between two looks at the store
_sleep = time.sleep  # tests replace it to run the controller between looks
clock = time.monotonic  # tests replace it with a clock they move


def _look(store: StateStore, names: Sequence[str], condition: str) -> list[conditions.Judged]:
    counts: dict[str, Counter[str]] = {n: Counter() for n in names}
    for (backfill, state), n in store.counts().items():
        if backfill in counts:
            counts[backfill][state] = n
    judged = []
    for name in names:
        record = store.backfill(name)
        if record is None:  # gc removed it since: it can finish no more
            raise typer.Exit(_gone(name))
        judged.append(conditions.judge(condition, record, counts[name]))
    return judged


def _gone(name: str) -> int:
    err(f"error: backfill/{name} is no longer in the state store")
    return 1


def _no_controller_note(store: StateStore) -> None:
    lease = store.lease()
    if lease is None or lease.expires_at < time.time():
        err(
            "note: no controller holds the lease: nothing changes until one runs "
            "(backfillctl controller, or apply --wait)"
        )


def _where(store: StateStore, judged: conditions.Judged) -> str:
    counts = {s: n for (b, s), n in store.counts().items() if b == judged.name}
    return f"backfill/{judged.name} is {judged.phase} ({describe_counts(counts)})"


ForOpt = Annotated[
    str,
    typer.Option(
        "--for",
        metavar="condition=NAME",
        help="condition=Succeeded, condition=Failed or condition=Finished (either).",
    ),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        help=f"Give up after this long (like 90s, 30m, 2h): exit {TIMED_OUT}. "
        "Default: wait for ever.",
        show_default=False,
    ),
]


def wait_command(
    targets: Annotated[
        list[str],
        typer.Argument(metavar="backfill/NAME", help="The backfills (NAME or backfill/NAME)."),
    ],
    for_: ForOpt,
    timeout: TimeoutOpt = None,
    state: StateOpt = None,
) -> None:
    """Wait until every named backfill meets a condition; for CI pipelines.

    It only watches the state store: a running controller (backfillctl controller, or
    apply --wait elsewhere) makes the backfills go on. Exit 0 when the condition holds
    for all, 1 when it can no longer hold for one (waiting for Succeeded and it failed,
    or it was deleted), 2 on usage errors, 124 when --timeout ran out (saying where
    each backfill is and why it waits). A state store away for a while (a server
    restarting) is waited for, 10 min at most (then exit 2).

    \b
    Examples:
      backfillctl wait backfill/fix-orders-2024-03 --for=condition=Succeeded --timeout 2h
      backfillctl wait fix-orders-2024-03 clicks-late-data --for condition=Finished
      backfillctl apply specs/ && backfillctl wait backfill/fix-orders-2024-03 \\
          --for=condition=Succeeded --timeout 6h || exit $?
    """
    condition = conditions.parse(for_)
    seconds = seconds_of("--timeout", timeout)
    store = open_state(state)
    names = list(dict.fromkeys(find_backfill(store, t).name for t in targets))
    patience = Patience(err, clock=clock, sleep=_sleep)
    progress = Progress(store, names, clock=clock, patience=patience)
    # Not judged yet: what a look gives while the store is away before the first answer.
    last = [conditions.Judged(n, "Pending", conditions.Verdict.pending) for n in names]
    first = True

    def look() -> list[conditions.Judged]:
        nonlocal first, last
        judged = patience.ask(lambda: _look(store, names, condition), None)
        if judged is None:  # the store is away: as last seen
            return last
        if first and not conditions.settled(judged):
            patience.ask(lambda: _no_controller_note(store), None)
        elif not first:
            progress()
        first, last = False, judged
        return judged

    try:
        judged, timed_out = conditions.wait_until(
            look, timeout=seconds, clock=clock, sleep=_sleep, interval=WAIT_INTERVAL
        )
    finally:
        progress.close()  # a live line on a terminal ends, its cursor shown again
    _finish(store, patience, names, condition, judged, timed_out, timeout)


def _finish(
    store: StateStore,
    patience: Patience,
    names: Sequence[str],
    condition: str,
    judged: Sequence[conditions.Judged],
    timed_out: bool,
    timeout: str | None,
) -> None:
    """Say how it ended; exit 0, 1 or TIMED_OUT. (What it says is read whole first: once
    when the time ran out, the store away then; until it answers otherwise.)"""
    if timed_out:
        err(f"error: timed out after {timeout} waiting for condition={condition}")
        pending = [j for j in judged if j.verdict is not conditions.Verdict.met]
        unread = unknown([j.name for j in pending])
        for line in patience.ask(lambda: _timed_out(store, pending), unread):
            err(line)
        raise typer.Exit(TIMED_OUT)
    impossible = [j for j in judged if j.verdict is conditions.Verdict.impossible]
    where = patience.read(lambda: [_where(store, j) for j in impossible])
    for text in where:
        err(f"error: {text}: condition={condition} can no longer be met")
    if impossible:
        err(f"  hint: backfillctl describe backfill/{impossible[0].name} says why")
        raise typer.Exit(1)
    for name in names:
        err(f"backfill/{name} condition met: {condition}")


def _timed_out(store: StateStore, pending: Sequence[conditions.Judged]) -> list[str]:
    """Where each backfill not there yet is, and why one of its instances waits."""
    where = [f"  {_where(store, j)}" for j in pending]
    return where + waiting_lines(store, [j.name for j in pending])
