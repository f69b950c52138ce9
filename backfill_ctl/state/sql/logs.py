"""Attempts' logs kept in the store (schema 6, `attempt_logs`): the last bytes of a
finished attempt's log, written with its end (end_attempt; usecases/attempt_logs.py), so
that `backfillctl logs` reads it wherever the store is reachable. gc forgets a copy with
its attempt's log (retention.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.state.protocols import StoredLog
from backfill_ctl.state.sql.base import SQLStore

if TYPE_CHECKING:
    from backfill_ctl.state.sql.base import Database


def keep_log_in(db: Database, instance: str, number: int, text: str, size: int, at: float) -> None:
    """The copy of an attempt's log, written inside the caller's transaction (save_log's,
    or end_attempt's: the end and its log in one commit)."""
    db.execute(
        "INSERT INTO attempt_logs (instance, number, text, size, stored_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance, number) DO UPDATE SET "
        "text = excluded.text, size = excluded.size, stored_at = excluded.stored_at",
        (instance, number, text.replace("\x00", "\ufffd"), size, at),
    )


class AttemptLogs(SQLStore):
    def save_log(self, instance: str, number: int, text: str, *, size: int, at: float) -> None:
        """Keep `text` (the log's last bytes, decoded) as the log of attempt `number` of
        `instance`, whose whole log had `size` bytes; a copy kept before is replaced."""
        with self._write() as db:
            keep_log_in(db, instance, number, text, size, at)

    def stored_log(self, instance: str, number: int) -> StoredLog | None:
        """The copy of an attempt's log kept in the store, if there is one."""
        rows = self._read(
            "SELECT text, size, stored_at FROM attempt_logs WHERE instance = ? AND number = ?",
            (instance, number),
        )
        return StoredLog(*rows[0]) if rows else None
