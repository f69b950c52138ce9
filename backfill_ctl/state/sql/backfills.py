"""Backfills: their rows, reads and field updates, the resource groups, and
`save_apply`: one transaction writing what apply decided (backfills, new, changed and
cancelled instances, resource groups) with its events."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.records import NOT_STARTED, BackfillRecord
from backfill_ctl.state import StoreConflict
from backfill_ctl.state.sql.base import SQLStore
from backfill_ctl.state.sql.events import EVENT_COLUMNS, insert_event
from backfill_ctl.state.sql.instances import INSTANCE_COLUMNS, instance_row

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.core.records import InstanceRecord
    from backfill_ctl.state.sql.base import Database

_BACKFILL_COLUMNS = (
    "name, digest, spec, file, status, suspended, run_immediately, execution_window, "
    "alert_when, notify, labels, applied_at, applied_by, finished_at, outcome, notified_at"
)
# `spec`: the stored document with its access (who may operate it), rewritten for a
# finished backfill without reopening it.
_SETTABLE_BACKFILL = {"status", "suspended", "finished_at", "outcome", "notified_at", "spec"}


def backfill_row(b: BackfillRecord) -> tuple[Any, ...]:
    return (
        b.name,
        b.digest,
        json.dumps(b.spec),
        b.file,
        b.status,
        int(b.suspended),
        int(b.run_immediately),
        json.dumps(b.execution_window) if b.execution_window else None,
        b.alert_when,
        json.dumps(list(b.notify)),
        json.dumps(b.labels),
        b.applied_at,
        b.applied_by,
        b.finished_at,
        b.outcome,
        b.notified_at,
    )


def backfill_of(row: Sequence[Any]) -> BackfillRecord:
    window = json.loads(row[7]) if row[7] else None
    return BackfillRecord(
        name=row[0],
        digest=row[1],
        spec=json.loads(row[2]),
        file=row[3],
        status=row[4],
        suspended=bool(row[5]),
        run_immediately=bool(row[6]),
        execution_window=tuple(window) if window else None,
        alert_when=row[8],
        notify=tuple(json.loads(row[9])),
        labels=json.loads(row[10]),
        applied_at=row[11],
        applied_by=row[12],
        finished_at=row[13],
        outcome=row[14],
        notified_at=row[15],
    )


class Backfills(SQLStore):
    def backfills(self, *, include_deleted: bool = False) -> list[BackfillRecord]:
        where = "" if include_deleted else " WHERE status != 'deleted'"
        rows = self._read(f"SELECT {_BACKFILL_COLUMNS} FROM backfills{where} ORDER BY name")
        return [backfill_of(r) for r in rows]

    def backfill(self, name: str) -> BackfillRecord | None:
        rows = self._read(f"SELECT {_BACKFILL_COLUMNS} FROM backfills WHERE name = ?", (name,))
        return backfill_of(rows[0]) if rows else None

    def update_backfill(
        self,
        name: str,
        *,
        at: float,
        actor: str,
        origin: str,
        event: str | None = None,
        **fields: Any,
    ) -> bool:
        unknown = set(fields) - _SETTABLE_BACKFILL
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on a backfill")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._write() as db:
            if fields:
                values = [
                    json.dumps(v) if k == "spec" else int(v) if isinstance(v, bool) else v
                    for k, v in fields.items()
                ]
                done = db.execute(
                    f"UPDATE backfills SET {sets} WHERE name = ?", (*values, name)
                ).rowcount
            else:  # an event only (an alert that failed): "SET  WHERE" is no SQL
                done = db.execute(
                    "SELECT COUNT(*) FROM backfills WHERE name = ?", (name,)
                ).fetchone()[0]
            if done and event:
                insert_event(db, at, actor, origin, "backfill", name, message=event)
        return bool(done)

    def resource_groups(self) -> dict[str, tuple[str, int]]:
        """name -> (type, concurrency), as last applied."""
        return {
            n: (t, c)
            for n, t, c in self._read("SELECT name, type, concurrency FROM resource_groups")
        }

    def save_apply(
        self,
        backfills: Sequence[BackfillRecord],
        creates: Sequence[InstanceRecord],
        updates: Sequence[InstanceRecord],
        cancels: Sequence[str],
        *,
        at: float,
        actor: str,
        origin: str,
        resource_groups: Sequence[tuple[str, str, int]] = (),
    ) -> list[str]:
        """One transaction: the backfills, new and changed instances, cancellations; the
        ids cancelled (PlanStore.save_apply). StoreConflict, and nothing written, when an
        instance to create is stored already (another apply wrote it meanwhile)."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO resource_groups (name, type, concurrency) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET type = excluded.type, "
                "concurrency = excluded.concurrency",
                resource_groups,
            )
            db.executemany(_UPSERT_BACKFILL, [backfill_row(b) for b in backfills])
            try:
                self._insert_rows(
                    db, "instances", INSTANCE_COLUMNS, [instance_row(i) for i in creates]
                )
            except self._CONFLICTS as exc:  # (the transaction is rolled back)
                raise StoreConflict(
                    f"the state store {self.path} changed while this apply was worked out: "
                    "another apply (a pipeline's, or the controller's) stored the same "
                    "instances",
                    hint="apply again: it compares the specs with what is stored now",
                ) from exc
            back = self._cancelled(db, [i.id for i in updates])  # read before they move
            db.executemany(_UPDATE_INSTANCE, [_definition(i, at) for i in updates])
            # Read after the updates, in this transaction: what is cancelled, from what.
            gone = self._cancellable(db, cancels)
            db.executemany(
                "UPDATE instances SET state = 'cancelled', reason = 'no longer in the specs', "
                "blocker = NULL, updated_at = ?, finished_at = ? WHERE id = ? AND state IN "
                "('pending', 'waiting-for-time', 'waiting-for-resources', 'frozen')",
                [(at, at, i) for i in gone],
            )
            events = _apply_events(backfills, creates, updates, gone, back, at, actor, origin)
            self._insert_rows(db, "events", EVENT_COLUMNS, events)
        return list(gone)

    def _cancellable(self, db: Database, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Those of the instances `ids` that an apply cancels, as they are stored (they
        have not started): id -> (its backfill, its state), in the order of `ids`. A
        started or finished one is kept, and an unknown id is nothing: neither moves."""
        if not ids:
            return {}
        among, chosen = self._among("id", ids)
        among_states, states = self._among("state", sorted(NOT_STARTED))
        rows = db.execute(
            f"SELECT id, backfill, state FROM instances WHERE {among} AND {among_states}",
            (chosen, states),
        ).fetchall()
        found = {i: (b, s) for i, b, s in rows}
        return {i: found[i] for i in dict.fromkeys(ids) if i in found}

    def _cancelled(self, db: Database, ids: Sequence[str]) -> set[str]:
        """Those of the instances `ids` that are cancelled (an update brings them back)."""
        if not ids:
            return set()
        among, chosen = self._among("id", ids)
        rows = db.execute(
            f"SELECT id FROM instances WHERE {among} AND state = 'cancelled'", (chosen,)
        ).fetchall()
        return {row[0] for row in rows}


_UPSERT_BACKFILL = (
    f"INSERT INTO backfills ({_BACKFILL_COLUMNS}) VALUES ({', '.join('?' * 16)}) "
    "ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, spec = excluded.spec,"
    " file = excluded.file, status = excluded.status, suspended = "
    "excluded.suspended, run_immediately = excluded.run_immediately, "
    "execution_window = excluded.execution_window, alert_when = "
    "excluded.alert_when, notify = excluded.notify, labels = excluded.labels, "
    "applied_at = excluded.applied_at, applied_by = excluded.applied_by, "
    "finished_at = NULL, outcome = NULL, notified_at = NULL"
)
# A changed definition: only of an instance that has not started or has ended badly. A
# cancelled one comes back pending, with nothing left of its cancellation (its reason,
# its end); every CASE reads the row as it was.
_UPDATE_INSTANCE = (
    "UPDATE instances SET cyctime = ?, cyctime_epoch = ?, timezone = ?, grp = ?, "
    "seq = ?, priority = ?, depends_on = ?, run = ?, resource_group = ?, "
    "dry_run_reason = ?, tries_left = ?, updated_at = ?, "
    "reason = CASE state WHEN 'cancelled' THEN NULL ELSE reason END, "
    "blocker = CASE state WHEN 'cancelled' THEN NULL ELSE blocker END, "
    "finished_at = CASE state WHEN 'cancelled' THEN NULL ELSE finished_at END, "
    "state = CASE state WHEN 'cancelled' THEN 'pending' ELSE state END "
    "WHERE id = ? AND state IN "
    "('pending', 'waiting-for-time', 'waiting-for-resources', 'frozen', 'failed', "
    "'cancelled')"
)
# The message of the transition of an instance an apply brings back.
BROUGHT_BACK = "brought back by apply"


def _definition(i: InstanceRecord, at: float) -> tuple[Any, ...]:
    return (
        i.cyctime,
        i.cyctime_epoch,
        i.timezone,
        i.group,
        i.sequence,
        i.priority,
        json.dumps(list(i.depends_on)),
        json.dumps(i.run.to_json()),
        i.resource_group,
        i.dry_run_reason,
        i.tries_left,
        at,
        i.id,
    )


def _apply_events(
    backfills: Sequence[BackfillRecord],
    creates: Sequence[InstanceRecord],
    updates: Sequence[InstanceRecord],
    cancelled: dict[str, tuple[str, str]],
    back: set[str],
    at: float,
    actor: str,
    origin: str,
) -> list[tuple[Any, ...]]:
    """The events of one apply, as rows of `EVENT_COLUMNS`: an instance brought back
    (`back`: it was cancelled) is a transition, like any change of state, and so is one
    cancelled (`cancelled`: id -> its backfill and the state it left); nothing else is."""
    who = (at, actor, origin)
    events: list[tuple[Any, ...]] = [
        (*who, "created", i.backfill, i.id, None, i.state, None) for i in creates
    ]
    changed = "definition changed by apply"
    events += [
        (*who, "transition", i.backfill, i.id, "cancelled", "pending", BROUGHT_BACK)
        if i.id in back
        else (*who, "updated", i.backfill, i.id, None, None, changed)
        for i in updates
    ]
    gone = "no longer in the specs"
    events += [
        (*who, "transition", backfill, i, state, "cancelled", gone)
        for i, (backfill, state) in cancelled.items()
    ]
    events += [
        (*who, "applied", b.name, None, None, None, f"applied {b.digest[:19]}") for b in backfills
    ]
    return events
