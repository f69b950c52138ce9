"""Retention in SQLite (what gc weighs and removes): each call is one transaction whose
guards are checked again inside it, so what changed meanwhile stays."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from backfill_ctl.core.records import InstanceAge
from backfill_ctl.state.sqlite.connection import Connection

if TYPE_CHECKING:
    from collections.abc import Sequence

_FINISHED = "('succeeded', 'failed', 'cancelled')"  # records.FINISHED, as SQL


class Retention(Connection):
    def instance_ages(self) -> list[InstanceAge]:
        """What gc weighs of every instance (no command or dependencies parsed)."""
        rows = self._read(
            "SELECT id, backfill, state, resource_group, finished_at, created_at "
            "FROM instances ORDER BY backfill, id"
        )
        return [InstanceAge(*r) for r in rows]

    def delete_instances(self, ids: Sequence[str], *, finished_before: float) -> list[str]:
        """One transaction: delete those of `ids` that are finished and finished (or, if
        they never did, were created) before `finished_before`, with their attempts and
        events; the ids deleted. The guard re-checks in the transaction, so an instance
        rerun meanwhile stays; so does a failed instance whose backfill still has
        unfinished instances (it holds them back: deleting it would release them)."""
        with self._write() as db:
            gone = [
                row[0]
                for row in db.execute(
                    f"SELECT id FROM instances i WHERE id IN (SELECT value FROM json_each(?)) "
                    f"AND state IN {_FINISHED} AND COALESCE(finished_at, created_at) < ? "
                    "AND (state != 'failed' OR NOT EXISTS (SELECT 1 FROM instances j WHERE "
                    f"j.backfill = i.backfill AND j.state NOT IN {_FINISHED}))",
                    (json.dumps(list(ids)), finished_before),
                ).fetchall()
            ]
            chosen = json.dumps(gone)
            for table, column in (("events", "instance"), ("attempts", "instance")):
                db.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                    (chosen,),
                )
            db.execute(
                "DELETE FROM instances WHERE id IN (SELECT value FROM json_each(?))", (chosen,)
            )
        return gone

    def delete_backfills(self, names: Sequence[str], *, finished_before: float) -> list[str]:
        """One transaction: delete those of `names` that have no instance left, are
        deleted or finished, and finished (or, if never, were applied) before
        `finished_before`, with their events; the names deleted."""
        with self._write() as db:
            gone = [
                row[0]
                for row in db.execute(
                    "SELECT name FROM backfills b WHERE name IN (SELECT value FROM json_each(?)) "
                    "AND (status = 'deleted' OR finished_at IS NOT NULL) "
                    "AND COALESCE(finished_at, applied_at) < ? "
                    "AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.backfill = b.name)",
                    (json.dumps(list(names)), finished_before),
                ).fetchall()
            ]
            chosen = json.dumps(gone)
            for table, column in (("events", "backfill"), ("backfills", "name")):
                db.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                    (chosen,),
                )
        return gone

    def clear_logs(self, logs: Sequence[tuple[str, int, str]]) -> list[tuple[str, int]]:
        """One transaction: forget the log of finished attempts, given as (instance,
        number, log) and only while their log is still that one; the attempts cleared."""
        cleared: list[tuple[str, int]] = []
        with self._write() as db:
            for instance, number, log in logs:
                if db.execute(
                    "UPDATE attempts SET log = NULL WHERE instance = ? AND number = ? AND "
                    "log = ? AND finished_at IS NOT NULL",
                    (instance, number, log),
                ).rowcount:
                    cleared.append((instance, number))
        return cleared
