"""The SQLite store: schema version and migrations, refusals that leave a file untouched,
one transaction per change, guarded transitions, waiting states, attempts, the lease."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from backfill_ctl.state import LeaseLost, StateError, open_store
from backfill_ctl.state import sqlite as sqlite_module
from backfill_ctl.state.sqlite import connection
from backfill_ctl.state.sqlite import SCHEMA_VERSION, SQLiteStore
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
        with pytest.raises(StateError, match="is locked by another process"):
            blocked.transition(ids, "frozen", allowed=["pending"], at=AT, actor="t", origin="t")
    finally:
        other.execute("ROLLBACK")
    assert {i.state for i in store.instances()} == {"pending"}


def test_a_change_that_fails_half_way_leaves_nothing_behind(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    events = store.last_event_id()
    one = store.instances()[0]
    record = store.backfill("bf")
    assert record is not None
    other = replace(record, name="other")

    with pytest.raises(sqlite3.IntegrityError):  # the same new instance twice
        store.save_apply([other], [one, one], [], [], at=AT, actor="t", origin="t")

    assert store.backfill("other") is None
    assert store.last_event_id() == events


def test_a_transition_moves_only_instances_in_an_allowed_state(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    a, b = store.instances(node="a")[0], store.instances(node="b")[0]
    store.transition([a.id], "failed", allowed=["pending"], at=AT, actor="t", origin="t")

    moved = store.transition(
        [a.id, b.id],
        "succeeded",
        allowed=["failed"],
        at=AT + 1,
        actor="ann",
        origin="cli",
        reason="set to succeeded by ann",
        kind="set-success",
        finished_at=AT + 1,
    )

    assert moved == [a.id]
    assert store.instances(ids=[b.id])[0].state == "pending"
    event = store.events(instance=a.id)[-1]
    assert (event.at, event.actor, event.kind, event.from_state, event.to_state) == (
        AT + 1,
        "ann",
        "set-success",
        "failed",
        "succeeded",
    )
    with pytest.raises(ValueError, match="cannot set"):
        store.transition(
            [a.id], "pending", allowed=["succeeded"], at=AT, actor="t", origin="t", node="x"
        )


def test_waiting_states_change_with_one_event_each_and_never_touch_a_running_one(
    tmp_path: Path,
) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    a, b = store.instances(node="a")[0], store.instances(node="b")[0]
    store.transition([b.id], "running", allowed=["pending"], at=AT, actor="t", origin="t")
    before = store.last_event_id()
    blocker = {"cause": "resources", "group": "rg", "busy": 2, "slots": 2}
    updates = [
        (a.id, "waiting-for-resources", "rg: 2 of 2 slots busy", blocker),
        (b.id, "pending", None, None),
    ]

    assert store.set_waiting(updates, at=AT, actor="c", origin="c") == 1
    assert store.set_waiting(updates, at=AT, actor="c", origin="c") == 0  # no change, no event
    assert store.instances(ids=[a.id])[0].blocker == blocker  # the decision, as it was made

    after = {i.node: (i.state, i.reason) for i in store.instances()}
    assert after == {
        "a": ("waiting-for-resources", "rg: 2 of 2 slots busy"),
        "b": ("running", None),
    }
    assert len(store.events(after=before)) == 1


def test_an_attempt_begins_only_from_a_waiting_state_and_its_end_is_kept(
    tmp_path: Path,
) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    a = store.instances(node="a")[0]

    number = store.begin_attempt(a.id, "local", at=AT, actor="c", origin="c")

    assert number == 1
    assert store.begin_attempt(a.id, "local", at=AT, actor="c", origin="c") is None  # running
    (attempt,) = store.attempts(a.id)
    assert (attempt.state, attempt.handle) == ("starting", {})
    store.set_attempt_handle(a.id, 1, {"pid": 42}, "/logs/a.1.log")
    # Stopped and set to failed by an operator meanwhile: the attempt's end is recorded,
    # the instance is left as the operator made it.
    store.transition([a.id], "failed", allowed=["running"], at=AT, actor="op", origin="cli")
    store.end_attempt(
        a.id,
        1,
        attempt_state="succeeded",
        exit_code=0,
        message=None,
        instance_state="succeeded",
        at=AT + 5,
        actor="c",
        origin="c",
    )
    (attempt,) = store.attempts(a.id)
    assert (attempt.state, attempt.exit_code, attempt.log, attempt.finished_at) == (
        "succeeded",
        0,
        "/logs/a.1.log",
        AT + 5,
    )
    assert store.instances(ids=[a.id])[0].state == "failed"


def test_the_first_report_of_an_attempt_s_end_wins(tmp_path: Path) -> None:
    """Two controllers may both report an attempt (one lost the lease while it could not
    write, the other adopted the attempt): the first report stands (issue 8)."""
    store = applied(tmp_path, *CHAIN, backfill())
    a = store.instances(node="a")[0]
    assert store.begin_attempt(a.id, "local", at=AT, actor="c", origin="old") == 1
    ended = {"exit_code": None, "message": None, "at": AT + 5, "actor": "c"}
    assert store.end_attempt(
        a.id, 1, attempt_state="succeeded", instance_state="succeeded", origin="old", **ended
    )
    assert not store.end_attempt(
        a.id, 1, attempt_state="lost", instance_state="pending", origin="new", **ended
    )
    (attempt,) = store.attempts(a.id)
    assert attempt.state == "succeeded"
    assert store.instances(ids=[a.id])[0].state == "succeeded"


def test_epochs_fence_the_starts_of_a_controller_that_lost_the_lease(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    a, b = store.instances(node="a")[0], store.instances(node="b")[0]
    old = store.acquire_lease("A", pid=1, host="h", at=100, ttl=30)
    new = store.acquire_lease("B", pid=2, host="h", at=131, ttl=30)  # A paused past it
    assert (old.epoch, new.epoch) == (1, 2)
    with pytest.raises(LeaseLost, match="no longer ours"):
        store.begin_attempt(a.id, "local", at=AT, actor="c", origin="A", fence=("A", 1))
    assert store.instances(ids=[a.id])[0].state == "pending"  # nothing recorded
    assert store.begin_attempt(b.id, "local", at=AT, actor="c", origin="B", fence=("B", 2))
    store.release_lease("A")  # a stale release leaves the newer holder's lease alone
    assert store.lease() == new


def test_the_lease_is_held_renewed_expires_and_is_released(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    first = store.acquire_lease("A", pid=1, host="h", at=100, ttl=30)
    assert (first.holder, first.expires_at) == ("A", 130)
    assert store.acquire_lease("B", pid=2, host="h", at=110, ttl=30).holder == "A"  # held
    renewed = store.acquire_lease("A", pid=1, host="h", at=120, ttl=30)
    assert (renewed.acquired_at, renewed.expires_at) == (100, 150)
    assert store.acquire_lease("B", pid=2, host="h", at=151, ttl=30).holder == "B"  # expired
    store.take_over_lease("B")  # B is known to be dead
    assert store.acquire_lease("C", pid=3, host="h", at=152, ttl=30).holder == "C"
    store.release_lease("A")  # not the holder: nothing happens
    assert store.acquire_lease("A", pid=1, host="h", at=153, ttl=30).holder == "C"
    store.release_lease("C")
    assert store.acquire_lease("A", pid=1, host="h", at=154, ttl=30).holder == "A"


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
