"""Retention (what gc weighs and removes): each call is one transaction whose
guards are checked again inside it, so what changed meanwhile stays."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.core.records import InstanceAge
from backfill_ctl.state.sql.base import SQLStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.state.sql.base import Database

_FINISHED = "('succeeded', 'failed', 'cancelled')"  # records.FINISHED, as SQL


class Retention(SQLStore):
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
        among, chosen = self._among("id", ids)
        with self._write() as db:
            gone = [
                row[0]
                for row in db.execute(
                    f"SELECT id FROM instances i WHERE {among} "
                    f"AND state IN {_FINISHED} AND COALESCE(finished_at, created_at) < ? "
                    "AND (state != 'failed' OR NOT EXISTS (SELECT 1 FROM instances j WHERE "
                    f"j.backfill = i.backfill AND j.state NOT IN {_FINISHED}))",
                    (chosen, finished_before),
                ).fetchall()
            ]
            self._delete(
                db,
                (("events", "instance"), ("attempts", "instance"), ("attempt_logs", "instance")),
                gone,
            )
            self._delete(db, (("instances", "id"),), gone)
        return gone

    def _delete(self, db: Database, where: Sequence[tuple[str, str]], keys: list[str]) -> None:
        """Delete the rows of each (table, column) whose column is one of `keys`."""
        for table, column in where:
            among, chosen = self._among(column, keys)
            db.execute(f"DELETE FROM {table} WHERE {among}", (chosen,))

    def delete_backfills(self, names: Sequence[str], *, finished_before: float) -> list[str]:
        """One transaction: delete those of `names` that have no instance left, are
        deleted or finished, and finished (or, if never, were applied) before
        `finished_before`, with their events; the names deleted."""
        among, chosen = self._among("name", names)
        with self._write() as db:
            gone = [
                row[0]
                for row in db.execute(
                    f"SELECT name FROM backfills b WHERE {among} "
                    "AND (status = 'deleted' OR finished_at IS NOT NULL) "
                    "AND COALESCE(finished_at, applied_at) < ? "
                    "AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.backfill = b.name)",
                    (chosen, finished_before),
                ).fetchall()
            ]
            self._delete(db, (("events", "backfill"), ("backfills", "name")), gone)
        return gone

    def clear_logs(
        self, logs: Sequence[tuple[str, int, str]], *, at: float
    ) -> list[tuple[str, int]]:
        """One transaction: forget the log of finished attempts, given as (instance,
        number, log) and only while their log is still that one, with the store's copy of
        it, noting that gc removed it `at` (so readers say so); the attempts cleared."""
        cleared: list[tuple[str, int]] = []
        with self._write() as db:
            for instance, number, log in logs:
                if db.execute(
                    "UPDATE attempts SET log = NULL, log_removed_at = ? WHERE instance = ? "
                    "AND number = ? AND log = ? AND finished_at IS NOT NULL",
                    (at, instance, number, log),
                ).rowcount:
                    cleared.append((instance, number))
                    db.execute(  # and the store's copy of it (logs.py)
                        "DELETE FROM attempt_logs WHERE instance = ? AND number = ?",
                        (instance, number),
                    )
        return cleared
