"""Attempts in SQLite: beginning one (fenced by the lease), its handle, its end (the
first report wins) or its abandonment, each with its instance's state change and event."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.records import AttemptRecord
from backfill_ctl.state.sql.base import SQLStore
from backfill_ctl.state.sql.events import EVENT_INSERT_SELECT, insert_event
from backfill_ctl.state.sql.lease import check_fence_in
from backfill_ctl.state.sql.logs import keep_log_in

if TYPE_CHECKING:
    from collections.abc import Iterable

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
        """Mark a waiting instance running and record its next attempt (before any process
        exists: a crash after this leaves an attempt to settle, never a silent run).
        With `fence` (holder, epoch), only while that holder still holds the lease in that
        epoch: a controller that lost its lease (paused past it) raises LeaseLost."""
        with self._write() as db:
            # Every statement is guarded by the instance's waiting state, read under the
            # write lock: the event and the attempt read the instance before the update
            # moves it, so no row is read back before writing (one round trip to a
            # server, and the COMMIT).
            waiting = "FROM instances WHERE id = ? AND state IN " + _WAITING
            db.execute(
                f"{EVENT_INSERT_SELECT} ?, ?, ?, 'transition', backfill, id, state, 'running', "
                f"'attempt ' || (attempts + 1) {waiting}",
                (at, actor, origin, instance),
            )
            db.execute(
                "INSERT INTO attempts (instance, number, backend, state, handle, started_at) "
                f"SELECT id, attempts + 1, ?, 'starting', '{{}}', ? {waiting}",
                (backend, at, instance),
            )
            started = db.execute(
                "UPDATE instances SET state = 'running', reason = NULL, blocker = NULL, "
                "attempts = attempts + 1, tries_left = tries_left - 1, started_at = ?, "
                f"finished_at = NULL, updated_at = ? WHERE id = ? AND state IN {_WAITING} "
                "RETURNING attempts",
                (at, at, instance),
            )
            if fence is not None:  # a lost lease rolls all of it back
                check_fence_in(db, fence)
            row = started.fetchone()
        return None if row is None else int(row[0])

    def set_attempt_handle(
        self, instance: str, number: int, handle: dict[str, Any], log: str | None
    ) -> None:
        with self._write() as db:
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
        """Record how an attempt ended and what its instance becomes, atomically (with
        `not_before`, a retry waits until then; with `log`, the copy of its log's end and
        the whole log's size, kept in the same commit). The first report wins: an attempt
        that was already recorded as ended (by another controller, which adopted it while
        this one could not write) is left as it is, and False says so."""
        with self._write() as db:
            ended = db.execute(
                "UPDATE attempts SET state = ?, exit_code = ?, message = ?, finished_at = ? "
                "WHERE instance = ? AND number = ? AND state IN ('starting', 'running') "
                "RETURNING number",
                (attempt_state, exit_code, message, at, instance, number),
            )
            found = db.execute(  # read with the update: one round trip to a server
                "SELECT backfill, state, attempts FROM instances WHERE id = ?", (instance,)
            )
            if ended.fetchone() is None:
                return False
            if log is not None:
                keep_log_in(db, instance, number, log[0], log[1], at)
            row = found.fetchone()
            if row is None or row[1] != "running" or row[2] != number:
                # Stopped or removed meanwhile, or already on a later attempt (a controller
                # that lost its lease reports late): the attempt is recorded, that is all.
                return True
            finished = at if instance_state in ("succeeded", "failed") else None
            db.execute(
                "UPDATE instances SET state = ?, reason = ?, blocker = NULL, finished_at = ?, "
                "updated_at = ?, "
                "stop_requested = 0, not_before = ? WHERE id = ?",
                (instance_state, message, finished, at, not_before, instance),
            )
            insert_event(
                db,
                at,
                actor,
                origin,
                "transition",
                row[0],
                instance,
                "running",
                instance_state,
                message,
            )
        return True

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
            " log, finished_at FROM attempts WHERE 1 = 1"
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
            AttemptRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9])
            for r in rows
        ]
