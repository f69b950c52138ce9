"""A SQLite store that commits often checkpoints its WAL in a thread (state/sqlite/
checkpoints.py): the WAL stays bounded under back-to-back commits, the file holds every
commit, nothing is left behind at the close, and a failing thread hands the work back."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from backfill_ctl.state import open_store
from backfill_ctl.state.sqlite import SQLiteStore, checkpoints

PAGE = 4096


def commit_many(store: SQLiteStore, count: int, rows: int = 40) -> None:
    """`count` commits of `rows` events each (a page or two of the WAL apiece)."""
    for n in range(count):
        store.add_events(
            "note",
            [(None, f"{n}.{k} " + "x" * 60) for k in range(rows)],
            at=0.0,
            actor="t",
            origin="t",
        )


def wal_pages(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size // PAGE if wal.exists() else 0


def threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "checkpoints"]


def test_a_busy_store_checkpoints_in_a_thread_and_its_wal_stays_bounded(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = open_store(db)
    assert isinstance(store, SQLiteStore)
    commit_many(store, checkpoints.AFTER - 1 - store._commits)  # (opening it committed)
    assert store._checkpointer is None and threads() == []  # a CLI command's few commits
    commit_many(store, 1)
    checkpointer = store._checkpointer
    assert checkpointer is not None and threads() == ["checkpoints"]
    size = db.stat().st_size
    biggest = 0
    for _ in range(30):  # ~ 2,000 commits, ~40,000 pages written to the WAL
        commit_many(store, checkpoints.EVERY)
        biggest = max(biggest, wal_pages(db))
    assert checkpointer.done > 0
    assert db.stat().st_size > size  # copied into the file while the store ran
    assert biggest < checkpoints.BACKSTOP * 1.2  # started over: not ~40,000 pages
    events = store.last_event_id()
    store.close()
    assert threads() == [] and not db.with_name("state.db-wal").exists()
    with sqlite3.connect(db) as again:
        assert again.execute("SELECT MAX(id) FROM events").fetchone()[0] == events


def test_a_checkpointer_that_fails_hands_the_checkpoints_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its connection cannot be opened (as on a full or failing disk): the busy
    connection checkpoints by itself again, at SQLite's 1,000 pages."""

    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    db = tmp_path / "state.db"
    store = open_store(db)
    assert isinstance(store, SQLiteStore)
    monkeypatch.setattr(checkpoints.sqlite3, "connect", refuse)
    commit_many(store, checkpoints.AFTER - store._commits)
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer._thread.join(5.0)
    assert checkpointer.failed
    commit_many(store, 1)
    assert store._checkpointer is None
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    commit_many(store, 400)  # ~ 4,000 pages: SQLite's own checkpoints keep it small
    assert wal_pages(db) < 2_000
    store.close()
    assert not db.with_name("state.db-wal").exists()


def test_a_checkpointer_that_cannot_start_fails_no_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit that would start the thread is done whatever becomes of it (no thread
    left for this process): the write succeeds, and SQLite keeps checkpointing."""

    def no_thread(path: str) -> checkpoints.Checkpointer:
        raise RuntimeError("can't start new thread")

    db = tmp_path / "state.db"
    store = open_store(db)
    assert isinstance(store, SQLiteStore)
    monkeypatch.setattr(checkpoints, "Checkpointer", no_thread)
    commit_many(store, checkpoints.AFTER + 400)  # no exception: every write is stored
    assert store._checkpointer is None and threads() == []
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert wal_pages(db) < 2_000
    assert len(store.events()) >= checkpoints.AFTER + 400
    store.close()
