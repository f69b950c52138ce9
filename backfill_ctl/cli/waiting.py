"""`apply --wait` and `controller`: running the loop, and showing its progress.

With the lease free, `apply --wait` runs the controller itself until the applied
backfills finish; with another controller running, it follows the store instead. On a
terminal progress is one live line (rich): a bar, the counts per state, the elapsed
time, the rate (instances finished per minute) and an estimate of the time left,
redrawn when the counts change and at most once a second for the clock; otherwise a
plain line when the counts changed, at most every PLAIN_EVERY seconds, and the last
one: what CI logs want (a line per change would be 300 lines for 300 instances). When it times
out, each unfinished backfill says why one of its instances waits: the blocker the
controller stored. `wait` shows the same progress and reasons (`Progress`, `waiting_lines`).

A store that is away for a while (a PostgreSQL server restarting, a full disk, a writer
paused mid-write) is waited for by every read here (cli.patience): the progress line and
the following go without it meanwhile, the embedded controller waits for it as it does
everywhere, and what is said at the end is read once it answers (once only when the time
ran out: then how a backfill stands may be unknown).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backfill_ctl.cli.console import err, rich_console
from backfill_ctl.cli.patience import Patience
from backfill_ctl.core.records import FINISHED, WAITING
from backfill_ctl.runtime.lease import waitable
from backfill_ctl.state import StateError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rich.console import Console, RenderableType
    from rich.live import Live

    from backfill_ctl.backends import Backend
    from backfill_ctl.runtime.controller import Controller, Tick
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state import ReadStore, StateStore

_ORDER = (
    "succeeded",
    "running",
    "failed",
    "waiting-for-resources",
    "waiting-for-time",
    "pending",
    "frozen",
    "cancelled",
)
_STYLE = {
    "succeeded": "green",
    "running": "cyan",
    "failed": "red",
    "waiting-for-resources": "yellow",
    "waiting-for-time": "yellow",
    "pending": "dim",
    "frozen": "blue",
    "cancelled": "dim",
}


def clock_text(seconds: float) -> str:
    """0:07, 12:34, 1:02:03."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


@dataclass(frozen=True)
class Snapshot:
    """The named backfills' instances per state, `elapsed` seconds after the first look,
    and how many had finished at that first look (the rate counts the others)."""

    counts: dict[str, int]
    elapsed: float
    finished_before: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FINISHED)

    @property
    def rate(self) -> float | None:
        """Instances finished per minute since the first look (None before any did)."""
        done = self.finished - self.finished_before
        return done * 60.0 / self.elapsed if done > 0 and self.elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds until all finish at this rate (None when there is no rate yet)."""
        left = self.total - self.finished
        if left <= 0:
            return 0.0
        rate = self.rate
        return left * 60.0 / rate if rate else None

    def states(self) -> list[tuple[str, int]]:
        return [(s, self.counts[s]) for s in _ORDER if self.counts.get(s)]

    def timing(self) -> str:
        """`elapsed 1:05, 3.2/min, ETA 0:40` (`-/min, ETA ?` before anything finished)."""
        rate, eta = self.rate, self.eta
        return (
            f"elapsed {clock_text(self.elapsed)}, "
            f"{'-' if rate is None else f'{rate:.1f}'}/min, "
            f"ETA {'?' if eta is None else clock_text(eta)}"
        )

    def line(self) -> str:
        """The plain line of CI logs."""
        text = ", ".join(f"{n} {s}" for s, n in self.states()) or "none"
        return f"progress: {self.finished}/{self.total} finished: {text} ({self.timing()})"

    def renderable(self) -> RenderableType:
        """The terminal's line: a bar, the counts in their colours, the timing."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        text = Text(f" {self.finished}/{self.total} ")
        for i, (state, n) in enumerate(self.states()):
            text.append(", " if i else "")
            text.append(f"{n} {state}", style=_STYLE.get(state, ""))
        text.append(f"  {self.timing()}", style="dim")
        grid = Table.grid()
        grid.add_row(ProgressBar(total=self.total or 1, completed=self.finished, width=30), text)
        return grid


# Seconds between two plain progress lines (off a terminal: CI logs).
PLAIN_EVERY = 5.0
# Seconds between two reads of the counts for the live line: ticks can come a millisecond
# apart, and a read of the store and a redraw at each would cost as much as the tick.
DRAW_EVERY = 0.05


class Progress:
    """The progress of the named backfills on stderr: with a console (stderr's, when it
    is a terminal) one live line, redrawn when the counts change (read at most every
    DRAW_EVERY seconds) and once a second for the clock; without, a plain line when the
    counts changed, at most every PLAIN_EVERY seconds (and the final counts at `close`).
    The counts are not read when nothing could be shown; while the store is away
    (`patience`), nothing is drawn."""

    def __init__(
        self,
        store: ReadStore,
        names: Sequence[str],
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        patience: Patience | None = None,
    ) -> None:
        self.store, self.names, self.clock = store, list(names), clock
        self.patience = patience or Patience(err, clock=clock)
        if console is None and sys.stderr.isatty():
            console = rich_console(sys.stderr)
        self.console = console
        self._live: Live | None = None
        self._start: float | None = None
        self._finished_before = 0
        self._shown: tuple[dict[str, int], int] | None = None  # counts, elapsed second
        self._read_at = 0.0  # elapsed seconds at the last read of the counts

    def snapshot(self) -> Snapshot | None:
        """The counts now; None while the store is away."""
        stored = self.patience.ask(self.store.counts, None)
        if stored is None:
            return None
        counts: dict[str, int] = {}
        for (backfill, state), n in stored.items():
            if backfill in self.names:
                counts[state] = counts.get(state, 0) + n
        now = self.clock()
        if self._start is None:
            self._start = now
            self._finished_before = sum(n for s, n in counts.items() if s in FINISHED)
        self._read_at = now - self._start
        return Snapshot(counts, self._read_at, self._finished_before)

    def _due(self, final: bool) -> bool:
        """Could anything be shown now? (Else the counts are not read.)"""
        if final or self._start is None or self._shown is None:
            return True
        elapsed = self.clock() - self._start
        if self.console is None:
            return elapsed - self._shown[1] >= PLAIN_EVERY
        return elapsed - self._read_at >= DRAW_EVERY

    def __call__(self, tick: Tick | None = None, *, final: bool = False) -> None:
        if not self._due(final):
            return
        shown = self._shown
        snap = self.snapshot()
        if snap is None:
            return
        if self.console is None:  # (a line is due: `_due`)
            if shown is None or snap.counts != shown[0]:
                err(snap.line())
                self._shown = (snap.counts, int(snap.elapsed))
        elif shown is None or (snap.counts, int(snap.elapsed)) != shown:
            self._draw(snap)

    def _draw(self, snap: Snapshot) -> None:
        assert self.console is not None
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                console=self.console, auto_refresh=False, redirect_stdout=False, transient=False
            )
            self._live.start()
        self._live.update(snap.renderable(), refresh=True)
        self._shown = (snap.counts, int(snap.elapsed))

    def close(self) -> None:
        """The final counts: the live line stays as last drawn; off a terminal the
        last line, unless it was printed already (or nothing ever was)."""
        if self.console is None:
            if self._shown is not None:
                self(final=True)
            return
        snap = self.snapshot()
        if snap is not None:
            self._draw(snap)
        if self._live is not None:
            self._live.stop()
            self._live = None


def waiting_lines(store: ReadStore, names: Sequence[str]) -> list[str]:
    """For each unfinished backfill: the first waiting instance with a stored blocker."""
    from backfill_ctl.usecases.progress import reason  # (a timeout's: not every wait's)

    lines = []
    for name in names:
        record = store.backfill(name)
        if record is None or record.finished_at is not None:
            continue
        waiting = store.instances(backfill=name, states=WAITING)
        first = next((i for i in waiting if i.blocker is not None), None)
        if first is not None:
            lines.append(
                f"backfill/{name}: {len(waiting)} waiting; instance/{first.id}: {reason(first)}"
            )
    return lines


FAILURES_SHOWN = 5


def _failures(store: ReadStore, name: str) -> list[str]:
    """The failed instances of a failed backfill, how each ended and where its log is (the
    first FAILURES_SHOWN; how to list the rest)."""
    failed = store.instances(backfill=name, states=["failed"])
    lines = [
        f"  instance/{i.id} ({i.node} {i.bizdate}): {i.reason or 'failed'}; "
        f"its log: backfillctl logs {i.id}"
        for i in failed[:FAILURES_SHOWN]
    ]
    if len(failed) > FAILURES_SHOWN:
        more = len(failed) - FAILURES_SHOWN
        lines.append(f"  and {more} more: backfillctl get instances -b {name} --state failed")
    return lines


def unknown(names: Sequence[str]) -> list[str]:
    """What is said of backfills when the store cannot be read at the end."""
    return [
        f"the state store cannot be reached: how backfill/{name} stands is unknown"
        for name in names
    ]


def _finished(store: ReadStore, names: Sequence[str]) -> bool:
    return all((b := store.backfill(n)) is None or b.finished_at is not None for n in names)


def _follow(
    store: ReadStore,
    names: Sequence[str],
    out_of_time: Callable[[], bool],
    progress: Progress,
) -> None:
    """Another controller runs them: show the store's progress until they finish (a store
    away meanwhile is waited for: `progress.patience`)."""
    err("a controller is running: following its progress")
    ask = progress.patience.ask
    while not out_of_time() and not ask(lambda: _finished(store, names), False):
        progress()
        time.sleep(1.0)


def _run(
    controller: Controller,
    names: Sequence[str],
    out_of_time: Callable[[], bool],
    progress: Progress,
) -> None:
    """The lease is ours: run the controller until the named backfills finish. (It waits
    for a store that is away itself; the progress line goes without meanwhile.)"""
    try:
        progress.patience.read(controller.load)
        gates = controller.scheduler.gates
        controller.run(
            interval=0.5,
            until=lambda tick: (
                out_of_time()
                or all(gates[n].record.finished_at is not None for n in names if n in gates)
            ),
            on_tick=progress,
        )
    finally:
        try:
            controller.release()
        except StateError as exc:  # a store away: the lease ends by itself
            if not waitable(exc):
                raise


TIMED_OUT = (
    "timed out: stopped waiting; running attempts go on, and a controller (or apply --wait) "
    "takes them over"
)


def _ending(store: ReadStore, names: Sequence[str], timed_out: bool) -> tuple[list[str], bool]:
    """What to say of the named backfills at the end, read whole before anything is said
    (a store away midway is read again); did they all succeed?"""
    lines = waiting_lines(store, names) if timed_out else []
    if timed_out:
        lines.append(TIMED_OUT)
    outcomes = {n: (b.outcome if (b := store.backfill(n)) else None) for n in names}
    for name, outcome in outcomes.items():
        lines.append(f"backfill/{name}: {outcome or 'not finished'}")
        if outcome == "failed":
            lines += _failures(store, name)
    return lines, all(o == "succeeded" for o in outcomes.values())


def wait_for(
    store: StateStore,
    names: Sequence[str],
    specs: Specs,
    backend: Backend,
    timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Run (on `backend`) or follow until every named backfill finished (or `timeout`
    seconds passed); did they all succeed? Stopped by SIGINT or SIGTERM before they did
    (the running attempts are left to the next controller): typer.Exit(130). A store
    away meanwhile is waited for (`Patience`: StoreGone past its limit); away when the
    time ran out, how they stand is unknown: not succeeded."""
    from backfill_ctl.runtime.controller import Controller

    deadline = None if timeout is None else time.monotonic() + timeout

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    patience = Patience(err)
    progress = Progress(store, names, patience=patience)
    controller = Controller(store, backend, say=err, smtp=specs.config.smtp, clock=clock)
    try:
        if patience.read(lambda: controller.acquire(wait=False)):
            _run(controller, names, out_of_time, progress)
        else:
            _follow(store, names, out_of_time, progress)
    finally:
        progress.close()
    if out_of_time():  # no more waiting for the store either: one try
        unread: tuple[list[str], bool] = ([TIMED_OUT, *unknown(names)], False)
        lines, succeeded = patience.ask(lambda: _ending(store, names, True), unread)
    else:
        lines, succeeded = patience.read(lambda: _ending(store, names, False))
    for line in lines:
        err(line)
    if controller.stopping and not succeeded:
        import typer

        err("interrupted")
        raise typer.Exit(130)
    return succeeded
