"""Events: the log every change writes in its own transaction (`insert_event`,
`EVENT_INSERT` for the other parts), read back in order, and the events gc adds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backfill_ctl.core.records import EventRecord
from backfill_ctl.state.sql.base import SQLStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.state.sql.base import Database

EVENT_COLUMNS = "at, actor, origin, kind, backfill, instance, from_state, to_state, message"
EVENT_INSERT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
# An event of each row a SELECT finds: followed by the SELECT's columns.
EVENT_INSERT_SELECT = f"INSERT INTO events ({EVENT_COLUMNS}) SELECT"


def insert_event(
    db: Database,
    at: float,
    actor: str,
    origin: str,
    kind: str,
    backfill: str | None,
    instance: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    message: str | None = None,
) -> None:
    db.execute(
        EVENT_INSERT, (at, actor, origin, kind, backfill, instance, from_state, to_state, message)
    )


class Events(SQLStore):
    def events(
        self,
        *,
        backfill: str | None = None,
        instance: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[EventRecord]:
        sql = (
            "SELECT id, at, actor, kind, backfill, instance, from_state, to_state, message, "
            "origin FROM events WHERE id > ?"
        )
        params: list[Any] = [after]
        if backfill is not None:
            sql += " AND backfill = ?"
            params.append(backfill)
        if instance is not None:
            sql += " AND instance = ?"
            params.append(instance)
        if limit is not None:  # the newest `limit`, in order
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT {int(limit)}) AS e ORDER BY id"
        else:
            sql += " ORDER BY id"
        return [EventRecord(*row) for row in self._read(sql, params)]

    def news(self, after: int, origin: str) -> tuple[list[EventRecord], int]:
        """The events after id `after` that others than `origin` wrote, in order, and the
        newest event id (at least `after`): the `after` of the next call. One statement:
        `origin`'s own are skipped in the store, but the newest row comes back whoever
        wrote it, so that the next call does not scan them again."""
        rows = self._read(
            "SELECT id, at, actor, kind, backfill, instance, from_state, to_state, message, "
            "origin FROM events WHERE id > ? AND (origin <> ? OR origin IS NULL "
            "OR id = (SELECT MAX(id) FROM events)) ORDER BY id",
            (after, origin),
        )
        if not rows:
            return [], after
        return [EventRecord(*row) for row in rows if row[9] != origin], int(rows[-1][0])

    def last_event_id(self) -> int:
        row = self._read("SELECT MAX(id) FROM events")[0]
        return int(row[0] or 0)

    def add_events(
        self,
        kind: str,
        entries: Sequence[tuple[str | None, str]],
        *,
        at: float,
        actor: str,
        origin: str,
    ) -> None:
        """One transaction: an event of `kind` for each (backfill, message)."""
        if not entries:
            return
        with self._write() as db:
            db.executemany(
                "INSERT INTO events (at, actor, origin, kind, backfill, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(at, actor, origin, kind, backfill, message) for backfill, message in entries],
            )
