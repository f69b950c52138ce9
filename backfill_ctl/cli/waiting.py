"""`apply --wait` and `controller`: running the loop, and showing its progress.

With the lease free, `apply --wait` runs the controller itself until the applied
backfills finish; with another controller running, it follows the store instead. On a
terminal progress is one line redrawn in place; otherwise a plain line whenever the
counts change (at most every two seconds), which is what CI logs want. When it times
out, each unfinished backfill says why one of its instances waits: the blocker the
controller stored. `wait` shows the same progress and reasons (`Progress`, `why_waiting`).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from backfill_ctl.cli.console import err
from backfill_ctl.core.records import WAITING
from backfill_ctl.usecases import progress as progress_

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.backends import Backend
    from backfill_ctl.runtime.controller import Tick
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


class Progress:
    def __init__(self, store: ReadStore, names: Sequence[str]) -> None:
        self.store, self.names = store, list(names)
        self.tty = sys.stderr.isatty()
        self._printed = ""
        self._shown = 0.0

    def __call__(self, tick: Tick | None = None) -> None:
        counts: dict[str, int] = {}
        for (backfill, state), n in self.store.counts().items():
            if backfill in self.names:
                counts[state] = counts.get(state, 0) + n
        total = sum(counts.values())
        done = counts.get("succeeded", 0) + counts.get("cancelled", 0)
        text = ", ".join(f"{counts[s]} {s}" for s in _ORDER if counts.get(s))
        if self.tty:
            width = 30
            filled = width * done // total if total else width
            sys.stderr.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {text}\x1b[K"
            )
            sys.stderr.flush()
        elif text != self._printed and time.monotonic() - self._shown >= 2.0:
            err(f"progress: {done}/{total} done: {text}")
            self._printed, self._shown = text, time.monotonic()

    def close(self) -> None:
        """The final counts, always shown."""
        self._shown = 0.0
        self(None)
        if self.tty:
            sys.stderr.write("\n")


def why_waiting(store: ReadStore, names: Sequence[str]) -> None:
    """For each unfinished backfill: the first waiting instance with a stored blocker."""
    for name in names:
        record = store.backfill(name)
        if record is None or record.finished_at is not None:
            continue
        waiting = store.instances(backfill=name, states=WAITING)
        first = next((i for i in waiting if i.blocker is not None), None)
        if first is not None:
            err(
                f"backfill/{name}: {len(waiting)} waiting; instance/{first.id}: "
                f"{progress_.reason(first)}"
            )


def _follow(
    store: ReadStore, names: Sequence[str], out_of_time: Callable[[], bool], progress: Progress
) -> None:
    """Another controller runs them: show the store's progress until they finish."""
    err("a controller is running: following its progress")
    while not out_of_time() and not all(
        (b := store.backfill(n)) is None or b.finished_at is not None for n in names
    ):
        progress()
        time.sleep(1.0)


def wait_for(
    store: StateStore,
    names: Sequence[str],
    specs: Specs,
    backend: Backend,
    timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Run (on `backend`) or follow until every named backfill finished (or `timeout`
    seconds passed); did they all succeed?"""
    from backfill_ctl.runtime.controller import Controller

    deadline = None if timeout is None else time.monotonic() + timeout

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    progress = Progress(store, names)
    controller = Controller(store, backend, say=err, smtp=specs.config.smtp, clock=clock)
    if controller.acquire(wait=False):
        try:
            controller.load()
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
            controller.release()
    else:
        _follow(store, names, out_of_time, progress)
    progress.close()
    if out_of_time():
        why_waiting(store, names)
        err(
            "timed out: stopped waiting; running attempts go on, and a controller (or "
            "apply --wait) takes them over"
        )
    outcomes = {n: (b.outcome if (b := store.backfill(n)) else None) for n in names}
    for name, outcome in outcomes.items():
        err(f"backfill/{name}: {outcome or 'not finished'}")
    return all(o == "succeeded" for o in outcomes.values())
