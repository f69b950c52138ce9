"""The SQLite connection every part of the store shares: opening (a private file, WAL, the
busy timeout), the versioned schema and its migrations, one `BEGIN IMMEDIATE` transaction
per write, and SQLite's failures told as `StateError`, `StoreUnavailable` (the disk) or a
lock held too long. A file that is not a SQLite database, or one written by a newer
backfillctl, is refused untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from backfill_ctl.state import NoStore, StateError, StoreLocked, StoreUnavailable
from backfill_ctl.state.sql.base import SQLStore
from backfill_ctl.state.sqlite import checkpoints

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from backfill_ctl.state.sql.base import Database, WaitingChange

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
    # 5: the dashboard's reads of a big backfill in index order, with no sort: its grid
    # by node and month (month_counts), its dates: their progress and when they ran
    # (date_counts, date_spans), one date's instances (the scope DAG)
    """
    CREATE INDEX instances_grid ON instances (backfill, node, (substr(bizdate, 1, 7)), state,
        (dry_run_reason IS NOT NULL), grp, seq, id);
    CREATE INDEX instances_dates ON instances (backfill, bizdate, grp, seq, state, started_at,
        finished_at);
    """,
    # 6: a copy of each finished attempt's log (its last bytes) in the store, so that
    # `backfillctl logs` works wherever the store is reachable (state/sql/logs.py)
    """
    CREATE TABLE attempt_logs (instance TEXT NOT NULL, number INTEGER NOT NULL,
        text TEXT NOT NULL, size INTEGER NOT NULL, stored_at REAL NOT NULL,
        PRIMARY KEY (instance, number));
    """,
    # 7: no index of the instances by state alone. Every state change moved an entry of
    # it (5% of the pages a controller's commits write, bench/wal_pages.py); the reads
    # by state are of one backfill (instances_by_backfill), but for a listing across
    # all of them (`get instances --state`), which reads the table instead.
    """
    DROP INDEX instances_by_state;
    """,
    # 8: when gc removed an attempt's log (retention.py), so that `logs`, `describe` and
    # the dashboard say so, rather than that the command wrote nothing
    """
    ALTER TABLE attempts ADD COLUMN log_removed_at REAL;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)
# _NEW: the file this process just created (empty) gets its WAL switch and its schema
# with synchronous=OFF, then NORMAL like every store. They hold nothing yet: a power loss
# before the disk has them leaves an empty file (a new store on the next open) or a WAL
# without its frames (an empty schema, migrated again on the next open), never rows
# written after them (WAL frames are checksummed in a chain: recovery stops at the first
# lost one). Waiting for them would be 6 syncs (the WAL switch's rollback journal, its
# folder and the file; the new WAL file and its folder): 2-3 ms on an idle disk, 5-25 ms
# on a busy one, before `apply --wait` could start anything (issue 15).


def _create_private(path: Path) -> bool:
    """A new store is readable by its owner only (0600; SQLite gives its -wal and -shm
    files the same mode), in directories created 0700, whatever the umask. An existing
    file or directory keeps its mode: it may be shared on purpose. Whether this call
    created the (empty) file."""
    missing = [d for d in [path.parent, *path.parent.parents] if not d.exists()]
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        return False
    return True


def _unopenable(path: str) -> StateError | None:
    """Why SQLite could not open the store ("unable to open database file"), and what to
    do, when it is the path (a directory, a folder this user cannot use); None when not
    (the disk: told as a failed write)."""
    if os.path.isdir(path):  # noqa: PTH112
        return StateError(
            f"cannot open the state store {path}: it is a directory, not a file",
            hint=f"name the store file, like --state-file {os.path.join(path, 'state.db')}",  # noqa: PTH118
        )
    folder = os.path.dirname(path) or "."  # noqa: PTH120
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        return StateError(
            f"cannot open the state store {path}: its folder {folder} cannot be read and "
            "written by this user",
            hint=f"check the permissions of {folder}, or choose another --state-file",
        )
    return None


class Connection(SQLStore):
    """One open store file, for the record parts (state/sql/: backfills, instances, ...)."""

    _CONFLICTS = (sqlite3.IntegrityError,)

    def __init__(self, path: Path, *, create: bool, busy_timeout: float) -> None:
        self.path = str(path)
        self._store_id: str | None = None
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._commits: int | None = 0  # None: checkpoints handed back for good
        self._checkpointer: checkpoints.Checkpointer | None = None  # once it commits often
        if not path.exists() and not create:
            raise NoStore(f"no state store at {path}", hint="run backfillctl apply first")
        try:
            new = _create_private(path)
            self._db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            if new:  # see _NEW
                self._db.execute("PRAGMA synchronous=OFF")
            self._wal()
            if not new:
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            if new:
                self._db.execute("PRAGMA synchronous=NORMAL")
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
        deadline = time.monotonic() + self._busy_timeout
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
        unopenable = _unopenable(self.path) if "unable to open" in text else None
        if unopenable is not None:
            return unopenable
        for words, what in _UNWRITABLE:
            if words in text:
                return StoreUnavailable(
                    f"the state store {self.path} cannot be written: {what} ({text})",
                    hint="free space on its disk (or make it writable again); nothing was "
                    "changed by the failed write, and the controller retries",
                )
        if "locked" in text or "busy" in text:
            return StoreLocked(
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
            raise self._newer(version, SCHEMA_VERSION)
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
        """One BEGIN IMMEDIATE transaction; one at a time on this connection, whichever
        thread asks (a second thread's BEGIN would fail inside the first's)."""
        with self._lock:
            if self._batch is not None:  # the batch's transaction, committed by the batch
                yield self._db
                return
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
            self._committed()

    def _committed(self) -> None:
        """One more commit: a connection that commits often hands its checkpoints to a
        thread (`checkpoints.py`), and takes them back for good if that thread failed.
        Never raises: the commit is done, whatever becomes of its checkpoints."""
        if self._commits is None:  # (handed back)
            return
        self._commits += 1
        checkpointer = self._checkpointer
        with contextlib.suppress(sqlite3.Error, RuntimeError):  # (RuntimeError: no thread)
            if checkpointer is None:
                if self._commits == checkpoints.AFTER:
                    self._checkpointer = checkpoints.Checkpointer(self.path)
                    self._db.execute(f"PRAGMA wal_autocheckpoint={checkpoints.BACKSTOP}")
            elif checkpointer.failed:
                self._checkpointer, self._commits = None, None
                self._db.execute("PRAGMA wal_autocheckpoint=1000")
            elif self._commits % checkpoints.EVERY == 0:
                checkpointer.nudge()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:  # not inside another thread's transaction (its uncommitted rows)
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _batches(
        self, sql: str, params: Sequence[Any] = (), size: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        with self._lock:
            try:
                cursor = self._db.execute(sql, params)
                with contextlib.closing(cursor):  # left early: its read ends now
                    while rows := cursor.fetchmany(size):
                        yield rows
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _waiting_changes(
        self, db: Database, updates: Sequence[tuple[str, str, str | None]]
    ) -> list[WaitingChange]:
        # CROSS JOIN keeps the few updates the outer loop (each a primary-key probe); left
        # to itself the planner scans every waiting row through the state index.
        return db.execute(
            "WITH u(id, state, reason) AS (SELECT json_extract(value, '$[0]'), "
            "json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)) "
            "SELECT i.id, i.backfill, i.state, u.state, u.reason FROM u CROSS JOIN "
            "instances i ON i.id = u.id WHERE i.state IN "
            "('pending', 'waiting-for-time', 'waiting-for-resources') AND i.state != u.state",
            (json.dumps(updates),),
        ).fetchall()

    def close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        self._db.close()

    def __del__(self) -> None:
        # Closed when the store is dropped, not when the cyclic collector gets to its
        # connection (sqlite3's statement cache refers back to it): the WAL is synced
        # into the file and removed then, and a process ending without teardown
        # (cli/teardown.py) has nothing left open. (No contextlib: at the interpreter's
        # end its module may be gone.)
        try:  # noqa: SIM105
            self.close()
        except Exception:  # (a store whose opening failed has no connection)
            pass
