"""The SQLite state store (stdlib sqlite3): WAL, busy timeout, versioned schema.

Connections run in autocommit mode; every write is one explicit `BEGIN IMMEDIATE`
transaction, so a crash at any moment leaves the previous state or the next one, never
half of a change. Bulk inserts go through `executemany`. A file that is not a SQLite
database, or one written by a newer backfillctl, is refused untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.records import (
    AttemptRecord,
    BackfillRecord,
    EventRecord,
    InstanceAge,
    InstanceRecord,
    Lease,
    Run,
    TaskRow,
)
from backfill_ctl.state import LeaseLost, StateError, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

BUSY_TIMEOUT = 10.0  # seconds another writer may hold the database before we give up
# What SQLite says when the disk under the store fails: the write did not happen, and may
# later (the controller keeps what it knows and tries again).
_UNWRITABLE = (
    ("database or disk is full", "its disk is full"),
    ("disk I/O error", "an I/O error"),
    ("readonly database", "it is read-only"),
    ("unable to open database file", "its file cannot be opened"),
)
_MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE resource_groups (name TEXT PRIMARY KEY, type TEXT NOT NULL,
        concurrency INTEGER NOT NULL);
    CREATE TABLE lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, pid INTEGER NOT NULL,
        host TEXT NOT NULL, acquired_at REAL NOT NULL, expires_at REAL NOT NULL);
    CREATE TABLE backfills (name TEXT PRIMARY KEY, digest TEXT NOT NULL, spec TEXT NOT NULL,
        file TEXT NOT NULL, status TEXT NOT NULL, suspended INTEGER NOT NULL,
        run_immediately INTEGER NOT NULL, execution_window TEXT, alert_when TEXT NOT NULL,
        notify TEXT NOT NULL, labels TEXT NOT NULL, applied_at REAL NOT NULL,
        applied_by TEXT, finished_at REAL, outcome TEXT, notified_at REAL);
    CREATE TABLE instances (id TEXT PRIMARY KEY, backfill TEXT NOT NULL, node TEXT NOT NULL,
        bizdate TEXT NOT NULL, cyctime TEXT NOT NULL, cyctime_epoch REAL NOT NULL,
        timezone TEXT NOT NULL, grp INTEGER NOT NULL, seq INTEGER NOT NULL,
        priority INTEGER NOT NULL, depends_on TEXT NOT NULL, run TEXT NOT NULL,
        resource_group TEXT NOT NULL, dry_run_reason TEXT, state TEXT NOT NULL, reason TEXT,
        attempts INTEGER NOT NULL, tries_left INTEGER NOT NULL, ignore_deps INTEGER NOT NULL,
        stop_requested INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        started_at REAL, finished_at REAL);
    CREATE INDEX instances_by_backfill ON instances (backfill, state);
    CREATE INDEX instances_by_state ON instances (state);
    CREATE TABLE attempts (instance TEXT NOT NULL, number INTEGER NOT NULL,
        backend TEXT NOT NULL, state TEXT NOT NULL, handle TEXT NOT NULL, exit_code INTEGER,
        message TEXT, log TEXT, started_at REAL NOT NULL, finished_at REAL,
        PRIMARY KEY (instance, number));
    CREATE INDEX attempts_by_state ON attempts (state);
    CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
        actor TEXT NOT NULL, origin TEXT, kind TEXT NOT NULL, backfill TEXT, instance TEXT,
        from_state TEXT, to_state TEXT, message TEXT);
    CREATE INDEX events_by_instance ON events (instance);
    CREATE INDEX events_by_backfill ON events (backfill, id);
    """,
    # 2: an identity, so that what a backend leaves outside (Kubernetes Jobs) is known as
    # this store's, not a discarded or a neighbouring one's
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(6))));
    """,
    # 3: the lease's fencing epoch (a new holder, a new epoch: every start checks it), and
    # when an instance that is to be retried may start again (run.retryDelay)
    """
    ALTER TABLE lease ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN not_before REAL;
    """,
    # 4: why a waiting instance waits, as the scheduler decided it: a typed blocker (JSON
    # {"cause": ..., details}); `reason` keeps its rendering
    """
    ALTER TABLE instances ADD COLUMN blocker TEXT;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)
_INSTANCE_COLUMNS = (
    "id, backfill, node, bizdate, cyctime, cyctime_epoch, timezone, grp, seq, priority, "
    "depends_on, run, resource_group, dry_run_reason, state, reason, attempts, tries_left, "
    "ignore_deps, stop_requested, created_at, updated_at, started_at, finished_at, not_before, "
    "blocker"
)
_BACKFILL_COLUMNS = (
    "name, digest, spec, file, status, suspended, run_immediately, execution_window, "
    "alert_when, notify, labels, applied_at, applied_by, finished_at, outcome, notified_at"
)
# `spec`: the stored document with its access (who may operate it), rewritten for a
# finished backfill without reopening it.
_SETTABLE_BACKFILL = {"status", "suspended", "finished_at", "outcome", "notified_at", "spec"}
_FINISHED = "('succeeded', 'failed', 'cancelled')"  # records.FINISHED, as SQL
_SETTABLE_INSTANCE = {
    "tries_left",
    "ignore_deps",
    "stop_requested",
    "finished_at",
    "started_at",
    "not_before",
}


def _create_private(path: Path) -> None:
    """A new store is readable by its owner only (0600; SQLite gives its -wal and -shm
    files the same mode), in directories created 0700, whatever the umask. An existing
    file or directory keeps its mode: it may be shared on purpose."""
    missing = [d for d in [path.parent, *path.parent.parents] if not d.exists()]
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


class SQLiteStore:
    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = str(path)
        self._store_id: str | None = None
        if not path.exists() and not create:
            raise StateError(f"no state store at {path}", hint="run backfillctl apply first")
        try:
            _create_private(path)
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            self._wal()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc
        except OSError as exc:
            raise StateError(
                f"cannot open the state store {path}: {exc.strerror}",
                hint="check the path and its permissions",
            ) from exc

    def _wal(self) -> None:
        """Switch to WAL. Two processes opening a new file at once: the loser of the
        switch is told "locked" without waiting, so it waits here (the busy timeout)."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _error(self, exc: sqlite3.Error) -> StateError:
        text = str(exc)
        for words, what in _UNWRITABLE:
            if words in text:
                return StoreUnavailable(
                    f"the state store {self.path} cannot be written: {what} ({text})",
                    hint="free space on its disk (or make it writable again); nothing was "
                    "changed by the failed write, and the controller retries",
                )
        if "locked" in text or "busy" in text:
            return StateError(
                f"the state store {self.path} is locked by another process",
                hint="wait for the other backfillctl to finish, or find it "
                "(fuser on the file); nothing was changed",
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StateError(
                f"the state store {self.path} is not a usable SQLite database ({text})",
                hint="restore it from a backup, or move it away to "
                "start afresh; it was not modified",
            )
        return StateError(f"state store {self.path}: {text}")

    def _version(self) -> int:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state store {self.path} has schema version {version}; this "
                f"backfillctl knows up to {SCHEMA_VERSION}",
                hint="upgrade backfillctl; the store was not modified",
            )
        return version

    def _migrate(self) -> None:
        if self._version() == SCHEMA_VERSION:
            return
        with self._write():
            # Read again under the write lock: another process (a second controller
            # started at the same instant) may have migrated meanwhile.
            for number in range(self._version(), SCHEMA_VERSION):
                for statement in _MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from exc
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            # SQLite rolls some failures back itself (a full disk, an I/O error): a
            # second ROLLBACK would fail and hide the cause.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):  # the disk, a lock: not a bug
                raise self._error(exc) from exc
            raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        self._db.close()

    @property
    def store_id(self) -> str:
        """A random id given to the store when it was made (12 hex digits)."""
        if self._store_id is None:
            self._store_id = str(self._read("SELECT value FROM meta WHERE key = 'store_id'")[0][0])
        return self._store_id

    # -- events ----------------------------------------------------------------------

    @staticmethod
    def _event(
        db: sqlite3.Connection,
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
            "INSERT INTO events (at, actor, origin, kind, backfill, instance, from_state, "
            "to_state, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at, actor, origin, kind, backfill, instance, from_state, to_state, message),
        )

    def events(
        self,
        *,
        backfill: str | None = None,
        instance: str | None = None,
        after: int = 0,
        limit: int | None = None,
        not_from: str | None = None,
    ) -> list[EventRecord]:
        sql = (
            "SELECT id, at, actor, kind, backfill, instance, from_state, to_state, message, "
            "origin FROM events WHERE id > ?"
        )
        params: list[Any] = [after]
        if not_from is not None:
            sql += " AND origin IS NOT ?"
            params.append(not_from)
        if backfill is not None:
            sql += " AND backfill = ?"
            params.append(backfill)
        if instance is not None:
            sql += " AND instance = ?"
            params.append(instance)
        if limit is not None:  # the newest `limit`, in order
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT {int(limit)}) ORDER BY id"
        else:
            sql += " ORDER BY id"
        return [EventRecord(*row) for row in self._read(sql, params)]

    def last_event_id(self) -> int:
        row = self._read("SELECT MAX(id) FROM events")[0]
        return int(row[0] or 0)

    # -- backfills -----------------------------------------------------------------

    @staticmethod
    def _backfill_row(b: BackfillRecord) -> tuple[Any, ...]:
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

    @staticmethod
    def _backfill(row: Sequence[Any]) -> BackfillRecord:
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

    def backfills(self, *, include_deleted: bool = False) -> list[BackfillRecord]:
        where = "" if include_deleted else " WHERE status != 'deleted'"
        rows = self._read(f"SELECT {_BACKFILL_COLUMNS} FROM backfills{where} ORDER BY name")
        return [self._backfill(r) for r in rows]

    def backfill(self, name: str) -> BackfillRecord | None:
        rows = self._read(f"SELECT {_BACKFILL_COLUMNS} FROM backfills WHERE name = ?", (name,))
        return self._backfill(rows[0]) if rows else None

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
                self._event(db, at, actor, origin, "backfill", name, message=event)
        return bool(done)

    # -- instances -------------------------------------------------------------------

    @staticmethod
    def _instance_row(i: InstanceRecord) -> tuple[Any, ...]:
        return (
            i.id,
            i.backfill,
            i.node,
            i.bizdate,
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
            i.state,
            i.reason,
            i.attempts,
            i.tries_left,
            int(i.ignore_deps),
            int(i.stop_requested),
            i.created_at,
            i.updated_at,
            i.started_at,
            i.finished_at,
            i.not_before,
            None if i.blocker is None else json.dumps(i.blocker),
        )

    @staticmethod
    def _instance(row: Sequence[Any]) -> InstanceRecord:
        return InstanceRecord(
            id=row[0],
            backfill=row[1],
            node=row[2],
            bizdate=row[3],
            cyctime=row[4],
            cyctime_epoch=row[5],
            timezone=row[6],
            group=row[7],
            sequence=row[8],
            priority=row[9],
            depends_on=tuple(json.loads(row[10])),
            run=Run.from_json(json.loads(row[11])),
            resource_group=row[12],
            dry_run_reason=row[13],
            state=row[14],
            reason=row[15],
            attempts=row[16],
            tries_left=row[17],
            ignore_deps=bool(row[18]),
            stop_requested=bool(row[19]),
            created_at=row[20],
            updated_at=row[21],
            started_at=row[22],
            finished_at=row[23],
            not_before=row[24],
            blocker=None if row[25] is None else json.loads(row[25]),
        )

    def instances(
        self,
        *,
        backfill: str | None = None,
        ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        node: str | None = None,
        bizdate: str | None = None,
    ) -> list[InstanceRecord]:
        clauses, params = [], []
        for column, value in (("backfill", backfill), ("node", node), ("bizdate", bizdate)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for column, values in (("state", states), ("id", ids)):
            if values is not None:
                chosen = list(values)
                if not chosen:
                    return []
                clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
                params.append(json.dumps(chosen))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances{where} "
            "ORDER BY backfill, grp, seq, cyctime_epoch, node",
            params,
        )
        return [self._instance(r) for r in rows]

    def resource_groups(self) -> dict[str, tuple[str, int]]:
        """name -> (type, concurrency), as last applied."""
        return {
            n: (t, c)
            for n, t, c in self._read("SELECT name, type, concurrency FROM resource_groups")
        }

    def task_rows(self, backfills: Sequence[str]) -> list[TaskRow]:
        """The scheduler's view of the instances of `backfills` (no commands parsed)."""
        rows = self._read(
            "SELECT id, backfill, bizdate, grp, seq, priority, cyctime_epoch, timezone, "
            "resource_group, dry_run_reason IS NOT NULL, depends_on, ignore_deps, state, reason, "
            "not_before FROM instances WHERE backfill IN (SELECT value FROM json_each(?))",
            (json.dumps(list(backfills)),),
        )
        return [
            TaskRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                bool(r[9]),
                tuple(json.loads(r[10])),
                bool(r[11]),
                r[12],
                r[13],
                r[14],
            )
            for r in rows
        ]

    def counts(self, backfill: str | None = None) -> dict[tuple[str, str], int]:
        sql = "SELECT backfill, state, COUNT(*) FROM instances"
        params: tuple[Any, ...] = ()
        if backfill is not None:
            sql += " WHERE backfill = ?"
            params = (backfill,)
        return {(b, s): n for b, s, n in self._read(sql + " GROUP BY backfill, state", params)}

    def date_counts(self, backfill: str) -> dict[tuple[int, int, str, str], int]:
        """(group, sequence, bizdate, state) -> instances: a backfill's progress by date."""
        rows = self._read(
            "SELECT grp, seq, bizdate, state, COUNT(*) FROM instances WHERE backfill = ? "
            "GROUP BY grp, seq, bizdate, state",
            (backfill,),
        )
        return {(g, q, d, s): n for g, q, d, s, n in rows}

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
    ) -> None:
        """One transaction: the backfills, new and changed instances, cancellations."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO resource_groups (name, type, concurrency) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET type = excluded.type, "
                "concurrency = excluded.concurrency",
                resource_groups,
            )
            db.executemany(
                f"INSERT INTO backfills ({_BACKFILL_COLUMNS}) VALUES ({', '.join('?' * 16)}) "
                "ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, spec = excluded.spec,"
                " file = excluded.file, status = excluded.status, suspended = "
                "excluded.suspended, run_immediately = excluded.run_immediately, "
                "execution_window = excluded.execution_window, alert_when = "
                "excluded.alert_when, notify = excluded.notify, labels = excluded.labels, "
                "applied_at = excluded.applied_at, applied_by = excluded.applied_by, "
                "finished_at = NULL, outcome = NULL, notified_at = NULL",
                [self._backfill_row(b) for b in backfills],
            )
            db.executemany(
                f"INSERT INTO instances ({_INSTANCE_COLUMNS}) VALUES ({', '.join('?' * 26)})",
                [self._instance_row(i) for i in creates],
            )
            db.executemany(
                "UPDATE instances SET cyctime = ?, cyctime_epoch = ?, timezone = ?, grp = ?, "
                "seq = ?, priority = ?, depends_on = ?, run = ?, resource_group = ?, "
                "dry_run_reason = ?, tries_left = ?, updated_at = ?, state = CASE state WHEN "
                "'cancelled' THEN 'pending' ELSE state END WHERE id = ? AND state IN "
                "('pending', 'waiting-for-time', 'waiting-for-resources', 'frozen', 'failed', "
                "'cancelled')",
                [
                    (
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
                    for i in updates
                ],
            )
            db.executemany(
                "UPDATE instances SET state = 'cancelled', reason = 'no longer in the specs', "
                "blocker = NULL, updated_at = ?, finished_at = ? WHERE id = ? AND state IN "
                "('pending', 'waiting-for-time', 'waiting-for-resources', 'frozen')",
                [(at, at, i) for i in cancels],
            )
            events: list[tuple[Any, ...]] = [
                (at, actor, origin, "created", i.backfill, i.id, None, i.state, None)
                for i in creates
            ]
            events += [
                (
                    at,
                    actor,
                    origin,
                    "updated",
                    i.backfill,
                    i.id,
                    None,
                    None,
                    "definition changed by apply",
                )
                for i in updates
            ]
            owners = (
                dict(
                    db.execute(
                        "SELECT id, backfill FROM instances WHERE id IN "
                        "(SELECT value FROM json_each(?))",
                        (json.dumps(list(cancels)),),
                    ).fetchall()
                )
                if cancels
                else {}
            )
            events += [
                (
                    at,
                    actor,
                    origin,
                    "transition",
                    owners.get(i),
                    i,
                    None,
                    "cancelled",
                    "no longer in the specs",
                )
                for i in cancels
            ]
            events += [
                (at, actor, origin, "applied", b.name, None, None, None, f"applied {b.digest[:19]}")
                for b in backfills
            ]
            db.executemany(
                "INSERT INTO events (at, actor, origin, kind, backfill, instance, from_state, "
                "to_state, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                events,
            )

    def transition(
        self,
        ids: Sequence[str],
        to_state: str,
        *,
        allowed: Iterable[str],
        at: float,
        actor: str,
        origin: str,
        reason: str | None = None,
        kind: str = "transition",
        **fields: Any,
    ) -> list[str]:
        """Move the instances that are in an `allowed` state; the ids that moved."""
        unknown = set(fields) - _SETTABLE_INSTANCE
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on an instance")
        allowed = list(allowed)
        extra = "".join(f", {k} = ?" for k in fields)
        values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
        moved: list[str] = []
        with self._write() as db:
            rows = db.execute(
                "SELECT id, backfill, state FROM instances WHERE id IN (SELECT value FROM "
                "json_each(?)) AND state IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)), json.dumps(allowed)),
            ).fetchall()
            db.executemany(
                "UPDATE instances SET state = ?, reason = ?, blocker = NULL, "
                f"updated_at = ?{extra} WHERE id = ?",
                [(to_state, reason, at, *values, row[0]) for row in rows],
            )
            db.executemany(
                "INSERT INTO events (at, actor, origin, kind, backfill, instance, from_state, "
                "to_state, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(at, actor, origin, kind, b, i, s, to_state, reason) for i, b, s in rows],
            )
            moved = [row[0] for row in rows]
        return moved

    def set_waiting(
        self,
        updates: Sequence[tuple[str, str, str | None, Mapping[str, Any] | None]],
        *,
        at: float,
        actor: str,
        origin: str,
    ) -> int:
        """Batch the scheduler's view of waiting instances: (id, state, reason, blocker)."""
        if not updates:
            return 0
        with self._write() as db:
            # CROSS JOIN keeps the few updates the outer loop (each a primary-key probe);
            # left to itself the planner scans every waiting row through the state index.
            changed = db.execute(
                "WITH u(id, state, reason) AS (SELECT json_extract(value, '$[0]'), "
                "json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)) "
                "SELECT i.id, i.backfill, i.state, u.state, u.reason FROM u CROSS JOIN "
                "instances i ON i.id = u.id WHERE i.state IN "
                "('pending', 'waiting-for-time', 'waiting-for-resources') AND i.state != u.state",
                (json.dumps([u[:3] for u in updates]),),
            ).fetchall()
            db.executemany(
                "UPDATE instances SET state = ?, reason = ?, blocker = ?, updated_at = ? "
                "WHERE id = ? AND state IN ('pending', 'waiting-for-time', "
                "'waiting-for-resources')",
                [
                    (state, reason, None if blocker is None else json.dumps(blocker), at, i)
                    for i, state, reason, blocker in updates
                ],
            )
            db.executemany(
                "INSERT INTO events (at, actor, origin, kind, backfill, instance, from_state, "
                "to_state, message) VALUES (?, ?, ?, 'transition', ?, ?, ?, ?, ?)",
                [(at, actor, origin, b, i, s, new, why) for i, b, s, new, why in changed],
            )
        return len(changed)

    # -- attempts ----------------------------------------------------------------------

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
            if fence is not None:
                self._check_fence(db, fence)
            row = db.execute(
                "SELECT backfill, state, attempts FROM instances WHERE id = ? AND state IN "
                "('pending', 'waiting-for-time', 'waiting-for-resources')",
                (instance,),
            ).fetchone()
            if row is None:
                return None
            backfill, state, attempts = row
            number = attempts + 1
            db.execute(
                "UPDATE instances SET state = 'running', reason = NULL, blocker = NULL, "
                "attempts = ?, tries_left = tries_left - 1, started_at = ?, finished_at = NULL, "
                "updated_at = ? WHERE id = ?",
                (number, at, at, instance),
            )
            db.execute(
                "INSERT INTO attempts (instance, number, backend, state, handle, started_at) "
                "VALUES (?, ?, ?, 'starting', '{}', ?)",
                (instance, number, backend, at),
            )
            self._event(
                db,
                at,
                actor,
                origin,
                "transition",
                backfill,
                instance,
                state,
                "running",
                f"attempt {number}",
            )
        return int(number)

    @staticmethod
    def _check_fence(db: sqlite3.Connection, fence: tuple[str, int]) -> None:
        row = db.execute("SELECT holder, epoch FROM lease WHERE name = 'controller'").fetchone()
        if row is None or (row[0], row[1]) != fence:
            holder = f"{row[0]} (epoch {row[1]})" if row else "nobody"
            raise LeaseLost(
                f"the lease is no longer ours (epoch {fence[1]}): {holder} holds it now"
            )

    def check_fence(self, fence: tuple[str, int]) -> None:
        """Raise LeaseLost unless `fence` (holder, epoch) still holds the lease."""
        with self._write() as db:
            self._check_fence(db, fence)

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
    ) -> bool:
        """Record how an attempt ended and what its instance becomes, atomically (with
        `not_before`, a retry waits until then). The first report wins: an attempt that
        was already recorded as ended (by another controller, which adopted it while this
        one could not write) is left as it is, and False says so."""
        with self._write() as db:
            if not db.execute(
                "UPDATE attempts SET state = ?, exit_code = ?, message = ?, finished_at = ? "
                "WHERE instance = ? AND number = ? AND state IN ('starting', 'running')",
                (attempt_state, exit_code, message, at, instance, number),
            ).rowcount:
                return False
            row = db.execute(
                "SELECT backfill, state, attempts FROM instances WHERE id = ?", (instance,)
            ).fetchone()
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
            self._event(
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
            self._event(
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
            sql += " AND state IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(states)))
        rows = self._read(sql + " ORDER BY instance, number", params)
        return [
            AttemptRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9])
            for r in rows
        ]

    # -- retention (gc) -----------------------------------------------------------------

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

    # -- lease --------------------------------------------------------------------------

    def acquire_lease(self, holder: str, *, pid: int, host: str, at: float, ttl: float) -> Lease:
        """Take or renew the controller lease; the lease as it stands (maybe another's).
        A new holder gets the next epoch, which fences every start of the one before."""
        with self._write() as db:
            row = db.execute(
                "SELECT holder, pid, host, acquired_at, expires_at, epoch FROM lease "
                "WHERE name = 'controller'"
            ).fetchone()
            if row is None or row[0] == holder or row[4] < at:
                same = row is not None and row[0] == holder
                acquired = row[3] if same else at
                epoch = (row[5] if same else row[5] + 1) if row is not None else 1
                db.execute(
                    "INSERT INTO lease (name, holder, pid, host, acquired_at, expires_at, "
                    "epoch) VALUES ('controller', ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO "
                    "UPDATE SET holder = excluded.holder, pid = excluded.pid, host = "
                    "excluded.host, acquired_at = excluded.acquired_at, expires_at = "
                    "excluded.expires_at, epoch = excluded.epoch",
                    (holder, pid, host, acquired, at + ttl, epoch),
                )
                return Lease(holder, pid, host, acquired, at + ttl, epoch)
            return Lease(*row)

    def lease(self) -> Lease | None:
        rows = self._read(
            "SELECT holder, pid, host, acquired_at, expires_at, epoch FROM lease "
            "WHERE name = 'controller'"
        )
        return Lease(*rows[0]) if rows else None

    def take_over_lease(self, dead_holder: str) -> None:
        """Expire a lease whose holder is known to be dead (its process is gone)."""
        with self._write() as db:
            db.execute("UPDATE lease SET expires_at = 0 WHERE holder = ?", (dead_holder,))

    def release_lease(self, holder: str) -> None:
        """Let go of the lease, if it is still ours (a newer holder's is left alone); the
        row stays, so the next holder's epoch is still higher."""
        with self._write() as db:
            db.execute(
                "UPDATE lease SET expires_at = 0 WHERE name = 'controller' AND holder = ?",
                (holder,),
            )
