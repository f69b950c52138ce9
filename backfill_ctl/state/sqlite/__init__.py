"""The SQLite state store (stdlib sqlite3): WAL, busy timeout, versioned schema.

Connections run in autocommit mode; every write is one explicit `BEGIN IMMEDIATE`
transaction, so a crash at any moment leaves the previous state or the next one, never
half of a change. Bulk inserts go through `executemany`.

What goes where, one module per kind of record, each a part of `SQLiteStore`:

- `connection.py`: opening the file (private modes, WAL), the schema and its migrations,
  the transaction, and SQLite's errors as `StateError` / `StoreUnavailable`;
- `backfills.py`: backfills, resource groups and `save_apply` (what apply writes);
- `instances.py`: instances, the scheduler's task rows, transitions, waiting states;
- `attempts.py`: attempts, fenced by the lease; the first end report wins;
- `events.py`: the event log; `lease.py`: the controller lease and its fence;
- `retention.py`: what gc weighs and deletes.

A new column is a new migration in `connection.py` and a change in its record's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.state.sqlite.attempts import Attempts
from backfill_ctl.state.sqlite.backfills import Backfills
from backfill_ctl.state.sqlite.connection import SCHEMA_VERSION
from backfill_ctl.state.sqlite.events import Events
from backfill_ctl.state.sqlite.instances import Instances
from backfill_ctl.state.sqlite.lease import LeaseTable
from backfill_ctl.state.sqlite.retention import Retention

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["BUSY_TIMEOUT", "SCHEMA_VERSION", "SQLiteStore"]

# Seconds another writer may hold the database before we give up; read when a store is
# opened (tests shorten it here).
BUSY_TIMEOUT = 10.0


class SQLiteStore(Backfills, Instances, Attempts, Events, LeaseTable, Retention):
    """The whole `StateStore` protocol over one SQLite file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        super().__init__(path, create=create, busy_timeout=BUSY_TIMEOUT)
