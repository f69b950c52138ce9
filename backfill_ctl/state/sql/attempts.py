"""Attempts in a SQL store: beginning them (fenced by the lease), their handles, their
ends (the first report wins) or an abandonment, each with its instance's state change
and event. The controller writes a tick's attempts together (`begin_attempts`,
`set_attempt_handles`, `end_attempts`: one transaction each, a few statements whatever
their number), since a commit costs more than its statements."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.records import AttemptRecord, Run
from backfill_ctl.state.protocols import AttemptEnd, Begun
from backfill_ctl.state.sql.base import SQLStore
from backfill_ctl.state.sql.events import EVENT_INSERT_SELECT, insert_event
from backfill_ctl.state.sql.lease import check_fence_in
from backfill_ctl.state.sql.logs import keep_log_in

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from backfill_ctl.state.sql.base import Database

_WAITING = "('pending', 'waiting-for-time', 'waiting-for-resources')"


class Attempts(SQLStore):
    def begin_attempt(
        self,
        instance: str,
        backend: str,
        *,
        at: float,
        actor: str,
        origin: str,
        fence: tuple[str, int] | None = None,
    ) -> int | None:
        """`begin_attempts` of one instance: its attempt's number, or None."""
        begun = self.begin_attempts(
            [instance], backend, at=at, actor=actor, origin=origin, fence=fence
        ).get(instance)
        return None if begun is None else begun.number

    def begin_attempts(
        self,
        instances: Sequence[str],
        backend: str,
        *,
        at: float,
        actor: str,
        origin: str,
        fence: tuple[str, int] | None = None,
        handle: Mapping[str, Any] | None = None,
    ) -> dict[str, Begun]:
        """Mark the waiting ones of `instances` running and record each one's next attempt,
        in one transaction (before any process exists: a crash after this leaves attempts
        to settle, never a silent run); each attempt begun (its number, and what starting
        it needs of its instance, read by the update itself), by instance; `handle` until
        it starts (the backend's `unstarted_handle`).
        With `fence` (holder, epoch), only while that holder still holds the lease in that
        epoch: a controller that lost its lease (paused past it) raises LeaseLost."""
        if not instances:
            return {}
        with self._write() as db:
            # Every statement is guarded by the instances' waiting state, read under the
            # write lock: the events and the attempts read the instances before the
            # update moves them, so no row is read back before writing (one round trip
            # to a server, and the COMMIT), whatever the number of instances.
            among, ids = self._among("id", instances)
            guard = f"{among} AND state IN {_WAITING}"
            waiting = f"FROM instances WHERE {guard}"
            db.execute(
                f"{EVENT_INSERT_SELECT} ?, ?, ?, 'transition', backfill, id, state, 'running', "
                f"'attempt ' || (attempts + 1) {waiting}",
                (at, actor, origin, ids),
            )
            db.execute(
                "INSERT INTO attempts (instance, number, backend, state, handle, started_at) "
                f"SELECT id, attempts + 1, ?, 'starting', ?, ? {waiting}",
                (backend, json.dumps(handle or {}), at, ids),
            )
            started = db.execute(
                "UPDATE instances SET state = 'running', reason = NULL, blocker = NULL, "
                "attempts = attempts + 1, tries_left = tries_left - 1, started_at = ?, "
                f"finished_at = NULL, updated_at = ? WHERE {guard} "
                "RETURNING id, attempts, backfill, node, bizdate, cyctime, run, timezone, "
                "tries_left",
                (at, at, ids),
            )
            if fence is not None:  # a lost lease rolls all of it back
                check_fence_in(db, fence)
            rows = started.fetchall()
        return {row[0]: _begun(row) for row in rows}

    def set_attempt_handle(
        self, instance: str, number: int, handle: dict[str, Any], log: str | None
    ) -> None:
        self.set_attempt_handles([(instance, number, handle, log)])

    def set_attempt_handles(
        self, handles: Sequence[tuple[str, int, dict[str, Any], str | None]]
    ) -> None:
        """Each started attempt's handle and log, (instance, number, handle, log), in one
        transaction."""
        if not handles:
            return
        with self._write() as db:
            for instance, number, handle, log in handles:
                db.execute(
                    "UPDATE attempts SET handle = ?, log = ?, state = 'running' WHERE "
                    "instance = ? AND number = ? AND state = 'starting'",
                    (json.dumps(handle), log, instance, number),
                )

    def end_attempt(
        self,
        instance: str,
        number: int,
        *,
        attempt_state: str,
        exit_code: int | None,
        message: str | None,
        instance_state: str,
        at: float,
        actor: str,
        origin: str,
        not_before: float | None = None,
        log: tuple[str, int] | None = None,
    ) -> bool:
        """`end_attempts` of one attempt."""
        end = AttemptEnd(
            instance, number, attempt_state, exit_code, message, instance_state, not_before, log
        )
        return self.end_attempts([end], at=at, actor=actor, origin=origin)[0]

    def end_attempts(
        self, ends: Sequence[AttemptEnd], *, at: float, actor: str, origin: str
    ) -> list[bool]:
        """Record how attempts ended and what their instances become, in one transaction
        (each end with its log's copy, when it has one). The first report wins: an
        attempt that was already recorded as ended (by another controller, which adopted
        it while this one could not write) is left as it is, and its False says so."""
        if not ends:
            return []
        with self._write() as db:
            ended = [
                db.execute(
                    "UPDATE attempts SET state = ?, exit_code = ?, message = ?, finished_at = ? "
                    "WHERE instance = ? AND number = ? AND state IN ('starting', 'running')",
                    (e.attempt_state, e.exit_code, e.message, at, e.instance, e.number),
                )
                if e.handle is None
                else db.execute(
                    "UPDATE attempts SET state = ?, exit_code = ?, message = ?, finished_at = ?, "
                    "handle = ?, log = ? WHERE instance = ? AND number = ? AND state IN "
                    "('starting', 'running')",
                    (
                        e.attempt_state,
                        e.exit_code,
                        e.message,
                        at,
                        json.dumps(e.handle[0]),
                        e.handle[1],
                        e.instance,
                        e.number,
                    ),
                )
                for e in ends
            ]
            among, ids = self._among("id", [e.instance for e in ends])
            found = db.execute(  # read with the updates: one round trip to a server
                f"SELECT id, backfill, state, attempts FROM instances WHERE {among}", (ids,)
            )
            rows = {row[0]: row[1:] for row in found.fetchall()}
            # (rowcount, not RETURNING: sqlite3 prepares a statement again while a cursor
            # of it has rows left, 40 µs per end)
            won = [result.rowcount == 1 for result in ended]
            for end, first in zip(ends, won, strict=True):
                if first:
                    _record_end(db, end, rows.get(end.instance), at, actor, origin)
        return won

    def abandon_attempt(
        self,
        instance: str,
        number: int,
        *,
        state: str,
        reason: str,
        at: float,
        actor: str,
        origin: str,
    ) -> None:
        """Forget an attempt that did not start after all (the backend had no room, or
        could not be reached); its instance goes back to `state` with its try given back."""
        with self._write() as db:
            gone = db.execute(
                "DELETE FROM attempts WHERE instance = ? AND number = ? AND state = 'starting'",
                (instance, number),
            ).rowcount
            row = db.execute(
                "SELECT backfill, state FROM instances WHERE id = ?", (instance,)
            ).fetchone()
            if not gone or row is None or row[1] != "running":
                return
            db.execute(
                "UPDATE instances SET state = ?, reason = ?, blocker = NULL, "
                "attempts = attempts - 1, tries_left = tries_left + 1, started_at = NULL, "
                "updated_at = ? WHERE id = ?",
                (state, reason, at, instance),
            )
            insert_event(
                db, at, actor, origin, "not-started", row[0], instance, "running", state, reason
            )

    def attempts(
        self, instance: str | None = None, *, states: Iterable[str] | None = None
    ) -> list[AttemptRecord]:
        sql = (
            "SELECT instance, number, backend, state, started_at, handle, exit_code, message,"
            " log, finished_at, log_removed_at FROM attempts WHERE 1 = 1"
        )
        params: list[Any] = []
        if instance is not None:
            sql += " AND instance = ?"
            params.append(instance)
        if states is not None:
            among, chosen = self._among("state", states)
            sql += f" AND {among}"
            params.append(chosen)
        rows = self._read(sql + " ORDER BY instance, number", params)
        return [
            AttemptRecord(
                r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9], r[10]
            )
            for r in rows
        ]


def _record_end(
    db: Database,
    end: AttemptEnd,
    row: tuple[Any, ...] | None,
    at: float,
    actor: str,
    origin: str,
) -> None:
    """An end that won (its attempt was still starting or running): its log's copy, and
    its instance's change (`row`: its backfill, state and attempts) with its event."""
    if end.log is not None:
        keep_log_in(db, end.instance, end.number, end.log[0], end.log[1], at)
    if row is None or row[1] != "running" or row[2] != end.number:
        # Stopped or removed meanwhile, or already on a later attempt (a controller that
        # lost its lease reports late): the attempt is recorded, that is all.
        return
    finished = at if end.instance_state in ("succeeded", "failed") else None
    db.execute(
        "UPDATE instances SET state = ?, reason = ?, blocker = NULL, finished_at = ?, "
        "updated_at = ?, stop_requested = 0, not_before = ? WHERE id = ?",
        (end.instance_state, end.message, finished, at, end.not_before, end.instance),
    )
    insert_event(
        db,
        at,
        actor,
        origin,
        "transition",
        row[0],
        end.instance,
        "running",
        end.instance_state,
        end.message,
    )


def _begun(row: Sequence[Any]) -> Begun:
    """An attempt begun, from the row `begin_attempts`' update returned."""
    run = Run.from_json(json.loads(row[6]))
    return Begun(row[0], int(row[1]), row[2], row[3], row[4], row[5], run, row[7], int(row[8]))
