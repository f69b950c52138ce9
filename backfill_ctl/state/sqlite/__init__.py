"""The SQLite state store (stdlib sqlite3): WAL, busy timeout, versioned schema.

Connections run in autocommit mode; every write is one explicit `BEGIN IMMEDIATE`
transaction, so a crash at any moment leaves the previous state or the next one, never
half of a change. Bulk inserts go through `executemany`.

What goes where: `connection.py` opens the file (private modes, WAL), holds the schema
and its migrations (PostgreSQL's store runs the same ones, translated), the transaction,
SQLite's errors as `StateError` / `StoreUnavailable`, and the SQL that is SQLite's own.
The records (backfills, instances, attempts, events, the lease, retention) are the parts
in state/sql/, shared with the PostgreSQL store.

A new column is a new migration in `connection.py` and a change in its record's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.state.sql.attempts import Attempts
from backfill_ctl.state.sql.backfills import Backfills
from backfill_ctl.state.sql.events import Events
from backfill_ctl.state.sql.instances import Instances
from backfill_ctl.state.sql.lease import LeaseTable
from backfill_ctl.state.sql.logs import AttemptLogs
from backfill_ctl.state.sql.retention import Retention
from backfill_ctl.state.sql.transfer import Transfer
from backfill_ctl.state.sqlite.connection import SCHEMA_VERSION, Connection

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["BUSY_TIMEOUT", "SCHEMA_VERSION", "SQLiteStore"]

# Seconds another writer may hold the database before we give up; read when a store is
# opened (tests shorten it here).
BUSY_TIMEOUT = 10.0


class SQLiteStore(
    Backfills,
    Instances,
    Attempts,
    AttemptLogs,
    Events,
    LeaseTable,
    Retention,
    Transfer,
    Connection,
):
    """The whole `StateStore` protocol over one SQLite file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        super().__init__(path, create=create, busy_timeout=BUSY_TIMEOUT)
