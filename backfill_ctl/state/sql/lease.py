"""The controller lease: one row, its holder and its fencing epoch (a new
holder, a new epoch); `check_fence_in` is the check every fenced start makes inside its
own transaction.

Whose clock: `acquire_lease(at=None)` reads the store's own clock inside the lease's
transaction, so controllers on several hosts agree on when a lease expires whatever their
clocks say: PostgreSQL's (`clock_timestamp()` of the server), and for SQLite, a file on
this machine, this machine's. An explicit `at` (the contract tests) is taken as given.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from backfill_ctl.core.records import Lease
from backfill_ctl.state import LeaseLost
from backfill_ctl.state.sql.base import SQLStore

if TYPE_CHECKING:
    from backfill_ctl.state.sql.base import Database


def check_fence_in(db: Database, fence: tuple[str, int]) -> None:
    row = db.execute("SELECT holder, epoch FROM lease WHERE name = 'controller'").fetchone()
    if row is None or (row[0], row[1]) != fence:
        holder = f"{row[0]} (epoch {row[1]})" if row else "nobody"
        raise LeaseLost(f"the lease is no longer ours (epoch {fence[1]}): {holder} holds it now")


class LeaseTable(SQLStore):
    def _now(self, db: Database) -> float:
        """Seconds since the epoch by the store's clock (see the module)."""
        if self.CLOCK is None:
            return time.time()
        return float(db.execute(self.CLOCK).fetchone()[0])

    def check_fence(self, fence: tuple[str, int]) -> None:
        """Raise LeaseLost unless `fence` (holder, epoch) still holds the lease."""
        with self._write() as db:
            check_fence_in(db, fence)

    def acquire_lease(
        self, holder: str, *, pid: int, host: str, at: float | None = None, ttl: float
    ) -> Lease:
        """Take or renew the controller lease; the lease as it stands (maybe another's).
        A new holder gets the next epoch, which fences every start of the one before.
        `at` None: now by the store's clock. A holder paused mid-write must not keep
        the write lock past its lease (the standby could not take over): half of it."""
        self._hold_limit(ttl / 2)
        with self._write() as db:
            if at is None:
                at = self._now(db)
            row = db.execute(
                "SELECT holder, pid, host, acquired_at, expires_at, epoch FROM lease "
                "WHERE name = 'controller'"
            ).fetchone()
            if row is None or row[0] == holder or row[4] < at:
                same = row is not None and row[0] == holder
                acquired = row[3] if same else at
                epoch = (row[5] if same else row[5] + 1) if row is not None else 1
                db.execute(
                    "INSERT INTO lease (name, holder, pid, host, acquired_at, expires_at, "
                    "epoch) VALUES ('controller', ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO "
                    "UPDATE SET holder = excluded.holder, pid = excluded.pid, host = "
                    "excluded.host, acquired_at = excluded.acquired_at, expires_at = "
                    "excluded.expires_at, epoch = excluded.epoch",
                    (holder, pid, host, acquired, at + ttl, epoch),
                )
                return Lease(holder, pid, host, acquired, at + ttl, epoch)
            return Lease(*row)

    def lease(self) -> Lease | None:
        rows = self._read(
            "SELECT holder, pid, host, acquired_at, expires_at, epoch FROM lease "
            "WHERE name = 'controller'"
        )
        return Lease(*rows[0]) if rows else None

    def take_over_lease(self, dead_holder: str) -> None:
        """Expire a lease whose holder is known to be dead (its process is gone)."""
        with self._write() as db:
            db.execute("UPDATE lease SET expires_at = 0 WHERE holder = ?", (dead_holder,))

    def release_lease(self, holder: str) -> None:
        """Let go of the lease, if it is still ours (a newer holder's is left alone); the
        row stays, so the next holder's epoch is still higher."""
        with self._write() as db:
            db.execute(
                "UPDATE lease SET expires_at = 0 WHERE name = 'controller' AND holder = ?",
                (holder,),
            )
