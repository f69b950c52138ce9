"""A store's rows as they are, for `backfillctl state migrate` (usecases/migrate.py):
every table read in key order, a batch at a time, and written into another store
(SQLite's or PostgreSQL's) with the same values: event ids, the lease's epoch, the
store's id.

`rows()` holds the store's write lock for as long as it is open (one write
transaction): a source read under it is one consistent state that no controller or
operator changes meanwhile (their writes wait, then fail as "locked"); a target written
under it is all or nothing, and checked for emptiness inside the same transaction.

`TABLES` names every column of every table but `meta` (the store id moves by itself);
tests/state/test_migrate.py checks it against the schema, so a new column is moved too.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from backfill_ctl.state.sql.base import SQLStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from backfill_ctl.state.sql.base import Database


def _table(key: str, columns: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(key.split()), tuple(columns.split())


# table -> (its key, its columns), in the order a store is moved
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "resource_groups": _table("name", "name type concurrency"),
    "lease": _table("name", "name holder pid host acquired_at expires_at epoch"),
    "backfills": _table(
        "name",
        "name digest spec file status suspended run_immediately execution_window alert_when "
        "notify labels applied_at applied_by finished_at outcome notified_at",
    ),
    "instances": _table(
        "id",
        "id backfill node bizdate cyctime cyctime_epoch timezone grp seq priority depends_on "
        "run resource_group dry_run_reason state reason attempts tries_left ignore_deps "
        "stop_requested created_at updated_at started_at finished_at not_before blocker",
    ),
    "attempts": _table(
        "instance number",
        "instance number backend state handle exit_code message log started_at finished_at "
        "log_removed_at",
    ),
    "events": _table("id", "id at actor origin kind backfill instance from_state to_state message"),
    "attempt_logs": _table("instance number", "instance number text size stored_at"),
}


class Rows:
    """A store's tables inside one of its write transactions."""

    def __init__(self, store: Transfer, db: Database) -> None:
        self._store = store
        self._db = db

    def tables(self) -> list[str]:
        return list(TABLES)

    def count(self, table: str) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def batches(self, table: str, size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows in key order, `size` at a time (keyset pages: each one an
        index search, whatever the table's size)."""
        key, columns = TABLES[table]
        select = f"SELECT {', '.join(columns)} FROM {table}"
        order = f"ORDER BY {', '.join(key)} LIMIT {int(size)}"
        places = [columns.index(k) for k in key]
        after = f"({', '.join(key)}) > ({', '.join('?' * len(key))})"
        rows = self._db.execute(f"{select} {order}").fetchall()
        while rows:
            yield [tuple(r) for r in rows]
            last = rows[-1]
            rows = self._db.execute(
                f"{select} WHERE {after} {order}", [last[p] for p in places]
            ).fetchall()

    def put(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self._store._put(self._db, table, TABLES[table][1], rows)

    @contextmanager
    def loading(self, table: str) -> Iterator[None]:
        """Around the writes of a whole table: its indexes but its key's are dropped
        first and made again at the end, in the same transaction (building an index once
        is about twice as fast as growing it row by row)."""
        indexes = self._store._indexes(self._db, table)
        for name, _ in indexes:
            self._db.execute(f"DROP INDEX {name}")
        yield
        for _, sql in indexes:
            self._db.execute(sql)

    def store_id(self) -> str:
        return str(self._db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0])

    def lease(self) -> tuple[str, int, str, float, int] | None:
        """The controller lease: (holder, pid, host, expires_at, epoch), if ever taken."""
        row = self._db.execute(
            "SELECT holder, pid, host, expires_at, epoch FROM lease WHERE name = 'controller'"
        ).fetchone()
        return tuple(row) if row is not None else None

    def event_counter(self) -> int:
        """The last event id ever given (gc may have deleted the newest events: a moved
        store keeps giving higher ids than any a reader may have seen)."""
        top = int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
        return max(top, self._store._last_event_id(self._db))

    def adopt(self, store_id: str, event_counter: int) -> None:
        """Take the identity of the store moved here, and its event counter."""
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'store_id'", (store_id,))
        if event_counter > self._store._last_event_id(self._db):
            self._store._set_last_event_id(self._db, event_counter)


class Transfer(SQLStore):
    """`rows()`, and how SQLite counts event ids (PostgreSQL's: `PostgresTransfer`)."""

    @contextmanager
    def rows(self) -> Iterator[Rows]:
        with self._write() as db:
            yield Rows(self, db)
        self._store_id = None  # a target took another store's id

    def _put(
        self, db: Database, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows,
        )

    def _indexes(self, db: Database, table: str) -> list[tuple[str, str]]:
        """The indexes of `table` that are not its key's: (name, the SQL that makes it)."""
        return [
            (str(name), str(sql))
            for name, sql in db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (table,),
            ).fetchall()
        ]

    def _last_event_id(self, db: Database) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row is not None else 0

    def _set_last_event_id(self, db: Database, value: int) -> None:
        if not db.execute(
            "UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (value,)
        ).rowcount:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (value,))


class PostgresTransfer(Transfer):
    """PostgreSQL's: rows written with COPY (on the connection of the open transaction),
    event ids drawn from the identity's sequence."""

    _connected: Callable[[], Any]  # postgres/connection.py: the open psycopg connection

    def _put(
        self, db: Database, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        with (
            self._connected().cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def _indexes(self, db: Database, table: str) -> list[tuple[str, str]]:
        return [
            (str(name), str(sql))
            for name, sql in db.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ? AND "
                "schemaname = current_schema() AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conname = indexname)",
                (table,),
            ).fetchall()
        ]

    def _last_event_id(self, db: Database) -> int:
        row = db.execute(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'id')::regclass)"
        ).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def _set_last_event_id(self, db: Database, value: int) -> None:
        db.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), ?)", (value,))
