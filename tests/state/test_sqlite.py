"""What is the SQLite store's own: its file (private modes, WAL), schema version and
migrations, refusals that leave a file untouched, a lock held by another process, an
identity that survives reopening. What every store does is in the contract
(tests/state/contract.py, run by test_contract.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_ctl.state import StateError, StoreLocked, open_store
from backfill_ctl.state import sqlite as sqlite_module
from backfill_ctl.state.sqlite import SCHEMA_VERSION, SQLiteStore, connection
from tests.builders import backfill, node
from tests.running import NOW, applied

AT = NOW.timestamp()
CHAIN = (node("a", resourceGroup="rg"), node("b", upstream=["a"], resourceGroup="rg"))


def pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_new_store_has_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    open_store(tmp_path / "deep" / "s.db").close()
    assert pragma(tmp_path / "deep" / "s.db", "user_version") == SCHEMA_VERSION
    assert pragma(tmp_path / "deep" / "s.db", "journal_mode") == "wal"


def test_a_missing_store_is_not_created_when_it_should_exist(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no state store at") as caught:
        open_store(tmp_path / "none.db", create=False)
    assert caught.value.hint == "run backfillctl apply first"
    assert not (tmp_path / "none.db").exists()


def test_an_older_store_is_migrated_and_keeps_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    store.close()
    later = [*connection._MIGRATIONS, "ALTER TABLE backfills ADD COLUMN owner TEXT"]
    monkeypatch.setattr(connection, "_MIGRATIONS", later)
    monkeypatch.setattr(connection, "SCHEMA_VERSION", len(later))

    reopened = SQLiteStore(tmp_path / "state.db")

    assert pragma(tmp_path / "state.db", "user_version") == SCHEMA_VERSION + 1
    assert [i.node for i in reopened.instances()] == ["a", "b"]
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert "owner" in [row[1] for row in db.execute("PRAGMA table_info(backfills)")]


def test_a_store_of_schema_6_loses_its_index_by_state_and_still_lists_by_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 7: the index every state change moved is dropped; a listing by state
    across backfills reads the table instead, and finds the same instances."""
    with monkeypatch.context() as old:
        old.setattr(connection, "_MIGRATIONS", connection._MIGRATIONS[:6])
        old.setattr(connection, "SCHEMA_VERSION", 6)
        applied(tmp_path, *CHAIN, backfill()).close()
    assert "instances_by_state" in indexes(tmp_path / "state.db")

    reopened = SQLiteStore(tmp_path / "state.db")

    assert "instances_by_state" not in indexes(tmp_path / "state.db")
    assert [i.node for i in reopened.instances(states=["pending"])] == ["a", "b"]


def indexes(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}


def test_a_store_of_a_newer_backfillctl_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()

    with pytest.raises(StateError) as caught:
        open_store(path)

    assert str(caught.value) == (
        f"the state store {path} has schema version {SCHEMA_VERSION + 1}; this backfillctl "
        f"knows up to {SCHEMA_VERSION}"
    )
    assert caught.value.hint == "upgrade backfillctl; the store was not modified"
    assert path.read_bytes() == before


def test_a_held_write_lock_is_a_clear_error_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT", 0.2)
    store = applied(tmp_path, *CHAIN, backfill())
    ids = [i.id for i in store.instances()]
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        blocked = SQLiteStore(tmp_path / "state.db")
        with pytest.raises(StoreLocked, match="is locked by another process"):
            blocked.transition(ids, "frozen", allowed=["pending"], at=AT, actor="t", origin="t")
    finally:
        other.execute("ROLLBACK")
    assert {i.state for i in store.instances()} == {"pending"}


def test_a_store_has_a_stable_random_identity(tmp_path: Path) -> None:
    first = open_store(tmp_path / "a.db")
    assert len(first.store_id) == 12 and int(first.store_id, 16) >= 0
    first.close()
    assert open_store(tmp_path / "a.db").store_id == first.store_id
    assert open_store(tmp_path / "b.db").store_id != first.store_id


def test_a_new_store_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Issue 9, item 6: 0600 for the store and its -wal/-shm, 0700 for a new directory."""
    old = os.umask(0)
    try:
        store = applied(tmp_path / "new" / "dir", *CHAIN, backfill())
    finally:
        os.umask(old)
    db = Path(store.path)
    for d in (tmp_path / "new", db.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    files = [db, *(db.with_name(db.name + x) for x in ("-wal", "-shm"))]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files if f.exists())
    assert db.with_name(db.name + "-wal").exists()


SYNCS = (
    "import os, sys\n"
    "from pathlib import Path\n"
    "from backfill_ctl.state import open_store\n"
    "store = open_store(Path(sys.argv[1]))\n"
    "print(store._db.execute('PRAGMA synchronous').fetchone()[0], flush=True)\n"
    "os._exit(0)  # not the checkpoint of closing: opening only\n"
)


def syncs_of_opening(path: Path) -> tuple[int, str]:
    """(fsync and fdatasync calls, PRAGMA synchronous after) of opening the store at
    `path` in a fresh process, under strace."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    log = path.with_name("strace.log")
    traced = [strace, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(log)]
    done = subprocess.run(
        [*traced, sys.executable, "-c", SYNCS, str(path)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    calls = [line for line in log.read_text().splitlines() if "sync(" in line]
    return len(calls), done.stdout.strip()


def test_a_new_store_is_created_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """Issue 15: the WAL switch and the schema of a file this process just created are
    written with synchronous=OFF (they hold nothing yet), then the store is NORMAL like
    every store; opening an existing one changes nothing of its durability."""
    path = tmp_path / "s.db"
    assert syncs_of_opening(path) == (0, "1")  # 1: NORMAL
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "journal_mode") == "wal"
    assert syncs_of_opening(path) == (0, "1")
    with sqlite3.connect(path) as db:  # rows written later are there
        db.execute("INSERT INTO meta (key, value) VALUES ('later', 'yes')")
    assert pragma(path, "integrity_check") == "ok"
