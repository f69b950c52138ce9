"""`PostgresStore`: the record parts (state/sql/) on a PostgreSQL connection."""

from __future__ import annotations

from backfill_ctl.state import sqlite
from backfill_ctl.state.postgres.connection import Connection
from backfill_ctl.state.sql.attempts import Attempts
from backfill_ctl.state.sql.backfills import Backfills
from backfill_ctl.state.sql.events import Events
from backfill_ctl.state.sql.instances import Instances
from backfill_ctl.state.sql.lease import LeaseTable
from backfill_ctl.state.sql.logs import AttemptLogs
from backfill_ctl.state.sql.retention import Retention
from backfill_ctl.state.sql.transfer import PostgresTransfer


class PostgresStore(
    Backfills,
    Instances,
    Attempts,
    AttemptLogs,
    Events,
    LeaseTable,
    Retention,
    PostgresTransfer,
    Connection,
):
    """The whole `StateStore` protocol over one PostgreSQL database."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        # SQLite's busy timeout, read when a store is opened (tests shorten it there)
        super().__init__(url, create=create, busy_timeout=sqlite.BUSY_TIMEOUT)
