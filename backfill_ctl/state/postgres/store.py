"""`PostgresStore`: the record parts (state/sql/) on a PostgreSQL connection."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Any

import psycopg

from backfill_ctl.state import sqlite
from backfill_ctl.state.postgres.connection import Connection, _pg
from backfill_ctl.state.sql.attempts import Attempts
from backfill_ctl.state.sql.backfills import Backfills
from backfill_ctl.state.sql.events import Events
from backfill_ctl.state.sql.instances import Instances
from backfill_ctl.state.sql.lease import LeaseTable
from backfill_ctl.state.sql.logs import AttemptLogs
from backfill_ctl.state.sql.retention import Retention
from backfill_ctl.state.sql.transfer import PostgresTransfer

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

# Rows streamed in chunks (psycopg 3.2 with libpq 17 or later), else one at a time.
_chunks = getattr(psycopg, "capabilities", None)
_CHUNKED = {"size": 10_000} if _chunks and _chunks.has_stream_chunked() else {}


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

    # (here, not in connection.py: that module is at its 400 lines) task_blocks'
    # aggregates (SQLStore.TEXTS ...): float8's text is its shortest exact digits
    TEXTS = "json_agg({})::text"
    TEXTS_SEPARATOR = ", "
    JOINED = "string_agg(({})::text, ',')"
    REAL = "coalesce(({0})::text, 'null')"

    def _batches(
        self, sql: str, params: Sequence[Any] = (), size: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        with self._lock:
            chunked = {"size": min(size, _CHUNKED["size"])} if _CHUNKED else {}
            rows = self._connected().cursor().stream(_pg(sql), params, **chunked)
            try:
                while batch := list(islice(rows, size)):
                    yield batch
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            finally:
                rows.close()  # left early: psycopg cancels the rest, under our lock
