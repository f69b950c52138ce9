"""The in-memory store's retention: what gc weighs and deletes, with the guards of the
SQLite store."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from backfill_ctl.core.records import (
    FINISHED,
    InstanceAge,
    InstanceRecord,
)
from backfill_ctl.state.memory.tables import Tables

if TYPE_CHECKING:
    from collections.abc import Sequence


class Retention(Tables):
    # -- retention (gc) --------------------------------------------------------------

    def instance_ages(self) -> list[InstanceAge]:
        with self._lock:
            rows = [
                InstanceAge(
                    i.id, i.backfill, i.state, i.resource_group, i.finished_at, i.created_at
                )
                for i in self._instances.values()
            ]
        return sorted(rows, key=lambda r: (r.backfill, r.id))

    def delete_instances(self, ids: Sequence[str], *, finished_before: float) -> list[str]:
        """Those of `ids` finished before `finished_before` (or, never finished, created
        before it), with their attempts and events; a failed instance whose backfill
        still has unfinished instances stays (it holds them back)."""
        with self._lock:
            unfinished = {i.backfill for i in self._instances.values() if i.state not in FINISHED}
            found = (self._instances.get(x) for x in dict.fromkeys(ids))
            gone = [
                i.id
                for i in found
                if i is not None and _collectable(i, finished_before, unfinished)
            ]
            chosen = set(gone)
            self._events = [e for e in self._events if e.instance not in chosen]
            self._attempts = {k: a for k, a in self._attempts.items() if k[0] not in chosen}
            self._logs = {k: log for k, log in self._logs.items() if k[0] not in chosen}
            for ident in gone:
                del self._instances[ident]
        return gone

    def delete_backfills(self, names: Sequence[str], *, finished_before: float) -> list[str]:
        with self._lock:
            held = {i.backfill for i in self._instances.values()}
            gone = [
                b.name
                for b in (self._backfills.get(n) for n in dict.fromkeys(names))
                if b is not None
                and (b.status == "deleted" or b.finished_at is not None)
                and (b.finished_at if b.finished_at is not None else b.applied_at) < finished_before
                and b.name not in held
            ]
            chosen = set(gone)
            self._events = [e for e in self._events if e.backfill not in chosen]
            for name in gone:
                del self._backfills[name]
        return gone

    def clear_logs(
        self, logs: Sequence[tuple[str, int, str]], *, at: float
    ) -> list[tuple[str, int]]:
        cleared: list[tuple[str, int]] = []
        with self._lock:
            for instance, number, log in logs:
                attempt = self._attempts.get((instance, number))
                if attempt is not None and attempt.log == log and attempt.finished_at is not None:
                    self._attempts[instance, number] = replace(attempt, log=None, log_removed_at=at)
                    self._logs.pop((instance, number), None)
                    cleared.append((instance, number))
        return cleared


def _collectable(i: InstanceRecord, before: float, unfinished: set[str]) -> bool:
    ended = i.finished_at if i.finished_at is not None else i.created_at
    return (
        i.state in FINISHED
        and ended < before
        and (i.state != "failed" or i.backfill not in unfinished)
    )
