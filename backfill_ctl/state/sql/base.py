"""What the record parts (backfills.py, instances.py, ...) ask of a SQL connection: a
write transaction, a read, and the few places where SQLite's SQL and PostgreSQL's differ.

The parts write their SQL once, with `?` placeholders (a PostgreSQL connection turns
them into `%s`); a list of values is bound as one parameter through `_among` (SQLite:
`IN (SELECT value FROM json_each(?))` with a JSON array; PostgreSQL: `= ANY(?)` with an
array). Everything else they write is SQL both databases run alike.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from backfill_ctl.state import StateError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from contextlib import AbstractContextManager


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Database(Protocol):
    """The connection inside a write transaction (sqlite3's, or an adapter of psycopg's)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


# A waiting state's change as the scheduler saw it: (id, backfill, from, to, reason).
WaitingChange = tuple[str, str, str, str, "str | None"]


class SQLStore:
    """The connection every record part builds on; a store's connection class
    (sqlite/connection.py, postgres/connection.py) provides it."""

    path: str
    _store_id: str | None = None
    # `column` among the values bound to the `?` of this template (see `_among`).
    AMONG = "{} IN (SELECT value FROM json_each(?))"
    # The query of the store's clock (seconds since the epoch) that a lease runs on; None:
    # this machine's (a SQLite file is on it).
    CLOCK: str | None = None
    # task_blocks' aggregates of a GROUP BY (state/sql/blocks.py): a column's values as
    # a JSON array (text, NULL as null); their text joined with commas; a
    # double's text that reads back exactly (a whole number as an integer, else quote():
    # the digits SQLite's .dump writes; NULL: null).
    TEXTS = "json_group_array({})"
    TEXTS_SEPARATOR = ","  # between the values of TEXTS's array
    JOINED = "group_concat({}, ',')"
    REAL = (
        "CASE WHEN {0} IS NULL THEN 'null' WHEN {0} = CAST({0} AS INTEGER) "
        "THEN CAST({0} AS INTEGER) ELSE quote({0}) END"
    )

    _batch: Database | None = None  # the transaction `batch` keeps open
    # The driver's errors of a row that is there already (a unique key): StoreConflict.
    _CONFLICTS: tuple[type[Exception], ...] = ()

    def _write(self) -> AbstractContextManager[Database]:
        """One write transaction; the writers of a store are serialized. Inside `batch`,
        the batch's transaction (committed when the batch ends)."""
        raise NotImplementedError

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside in one transaction, committed at the end (one commit for a
        tick's writes, where each commit costs more than its statements): all of them or,
        on an error, none. A call's result inside is final only once the batch ended
        without an error. Other threads' calls wait for the batch; a batch inside a batch
        (this thread's: `_write` holds the store's lock) is part of it."""
        with self._write() as db:
            if self._batch is not None:
                yield
                return
            self._batch = db
            try:
                yield
            finally:
                self._batch = None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _batches(
        self, sql: str, params: Sequence[Any] = (), size: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """A read's rows as the connection's cursor gives them, `size` at a time (not a
        list of them all: a million rows of task_rows); the connection is held until the
        last batch is taken or the iterator is closed."""
        raise NotImplementedError

    def _hold_limit(self, seconds: float) -> None:
        """Let this connection hold the store's write lock at most `seconds` while idle in
        a transaction (a process paused mid-write), where a server can end it; SQLite has
        none to do so: nothing."""

    @property
    def store_id(self) -> str:
        """A random id given to the store when it was made (12 hex digits)."""
        if self._store_id is None:
            self._store_id = str(self._read("SELECT value FROM meta WHERE key = 'store_id'")[0][0])
        return self._store_id

    def _newer(self, version: int, known: int) -> StateError:
        """The refusal of a store whose schema is newer than this backfillctl knows."""
        return StateError(
            f"the state store {self.path} has schema version {version}; this "
            f"backfillctl knows up to {known}",
            hint="upgrade backfillctl; the store was not modified",
        )

    def _among(self, column: str, values: Iterable[Any]) -> tuple[str, Any]:
        """(the condition `column` is one of `values`, its one parameter)."""
        return self.AMONG.format(column), self._values(list(values))

    def _values(self, values: list[Any]) -> Any:
        """A list of values as one parameter: JSON for SQLite's json_each."""
        return json.dumps(values)

    def _insert_rows(
        self, db: Database, table: str, columns: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert many rows of `columns` (a comma-separated list) into `table`:
        executemany here, COPY on PostgreSQL."""
        marks = ", ".join("?" * len(columns.split(",")))
        db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    def _waiting_changes(
        self, db: Database, updates: Sequence[tuple[str, str, str | None]]
    ) -> list[WaitingChange]:
        """Of the (id, state, reason) the scheduler decided, those that change the state
        of a waiting instance: (id, backfill, its state, the new state, reason)."""
        raise NotImplementedError
