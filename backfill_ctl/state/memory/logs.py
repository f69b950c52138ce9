"""The in-memory store's copies of attempts' logs (as state/sql/logs.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.state.memory.tables import Tables

if TYPE_CHECKING:
    from backfill_ctl.state.protocols import StoredLog


class AttemptLogs(Tables):
    def save_log(self, instance: str, number: int, text: str, *, size: int, at: float) -> None:
        with self._lock:
            self._keep_log(instance, number, text, size, at)

    def stored_log(self, instance: str, number: int) -> StoredLog | None:
        with self._lock:
            return self._logs.get((instance, number))
