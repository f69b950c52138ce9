"""`backfillctl state migrate`: move a store, with its whole history, into an empty one
(issue 14: from a SQLite file to a team's PostgreSQL, or back).

What moves: every row (backfills, resource groups, instances, attempts, events with
their ids and order, the lease with its epoch, the stored copies of logs) and the store's
id. The id moves because a backend marks what it leaves outside with it (the Kubernetes
backend labels its Jobs `backfillctl.dev/store=<id>` and adopts only those): the moved
store's controller adopts the Jobs its source started. The event counter moves too, so
no new event gets an id below one a reader has seen.

Safety. The source is read inside one of its write transactions (state/sql/transfer.py):
nobody writes it meanwhile, and a controller holding its lease is refused, named, before
anything is read (with its lease held a controller would start attempts the copy does
not see). The target is written in one transaction, after checking, inside it, that it
is empty: refused, nothing is written; and counts that differ after the copy roll it
back. The source is left as it was: what points at it (controllers, CI) must be pointed
at the target, and no controller started on the source again (two stores with one id
would both adopt its Jobs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backfill_ctl.state import StateError

if TYPE_CHECKING:
    from collections.abc import Callable

    from backfill_ctl.state.protocols import MovableStore, StoreRows

BATCH = 10_000  # rows per read and write


@dataclass
class Moved:
    """What a migration moved: rows per table, the store's id, the lease's epoch."""

    counts: dict[str, int] = field(default_factory=dict)
    store_id: str = ""
    target: str = ""  # where it went (a URL's password hidden)
    epoch: int = 0
    seconds: float = 0.0


def _quiet(table: str, done: int, total: int) -> None:
    """A progress report (table, rows copied so far, rows in all), unheard."""


def migrate(
    source: MovableStore,
    target: Callable[[], MovableStore],
    *,
    now: float,
    progress: Callable[[str, int, int], None] = _quiet,
    batch: int = BATCH,
) -> Moved:
    """Copy every row of `source` into the empty store `target()` opens (once the source
    is found movable: a refused source makes no target); what was moved."""
    began = time.monotonic()
    with source.rows() as src:
        lease = src.lease()
        _refuse_held(source, lease, now)
        moved = Moved({t: src.count(t) for t in src.tables()}, src.store_id())
        moved.epoch = lease[4] if lease else 0
        into = target()
        moved.target = into.path
        try:
            _copy(src, into, moved, progress, batch)
        finally:
            into.close()
    moved.seconds = time.monotonic() - began
    return moved


def _copy(
    src: StoreRows,
    target: MovableStore,
    moved: Moved,
    progress: Callable[[str, int, int], None],
    batch: int,
) -> None:
    with target.rows() as dst:
        _refuse_filled(target, dst)
        for table, total in moved.counts.items():
            done = 0
            with dst.loading(table):
                for rows in src.batches(table, batch):
                    dst.put(table, rows)
                    done += len(rows)
                    if done < total:
                        progress(table, done, total)
            progress(table, done, total)  # with its indexes made
        dst.adopt(moved.store_id, src.event_counter())
        _verify(target, dst, moved.counts)


def _refuse_held(
    source: MovableStore, lease: tuple[str, int, str, float, int] | None, now: float
) -> None:
    if lease is None or lease[3] <= now:
        return
    holder, pid, host, expires, epoch = lease
    raise StateError(
        f"a controller holds the lease of {source.path}: {holder} (pid {pid} on {host}, "
        f"epoch {epoch}), for {expires - now:.0f} s more unless it renews it",
        hint="stop every controller of this store first (with its standbys), then migrate; "
        "a stopped controller lets go of its lease at once. Nothing was written",
    )


def _refuse_filled(target: MovableStore, rows: StoreRows) -> None:
    held = {t: n for t in rows.tables() if (n := rows.count(t))}
    if held:
        what = ", ".join(f"{n:,} {t.replace('_', ' ')}" for t, n in held.items())
        raise StateError(
            f"the target {target.path} is not empty: it holds {what}",
            hint="state migrate moves a store only into an empty one: name a new file, "
            "database or schema (?options=-csearch_path%3DNAME). Nothing was written",
        )


def _verify(target: MovableStore, rows: StoreRows, expected: dict[str, int]) -> None:
    got = {t: rows.count(t) for t in expected}
    wrong = [f"{t}: {got[t]:,} of {n:,}" for t, n in expected.items() if got[t] != n]
    if wrong:  # raised inside the target's transaction: it is rolled back
        raise StateError(
            f"the copy in {target.path} does not hold what the source does ({'; '.join(wrong)})",
            hint="nothing was kept in the target; this is a bug in backfillctl, please report it",
        )
