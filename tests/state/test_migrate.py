"""`backfillctl state migrate` with real stores: SQLite files, and a real PostgreSQL
server in the tier of BACKFILLCTL_PG=1 (tests/state/conftest.py).

A source holds every kind of row (resource groups, backfills, instances with attempts, a
retried one, events some of which gc deleted, the lease with its epoch, a stored log);
what arrives is compared table by table, row by row, with the store's id."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from backfill_ctl.state import open_store
from backfill_ctl.state.sql.transfer import TABLES
from backfill_ctl.state.sqlite import SCHEMA_VERSION
from tests.cli.helpers import run
from tests.state.contract import AT, WHO, backfill, end, instance, seeded, start
from tests.tools.postgres import PASSWORD, PostgresServer

BACKFILLCTL = str(Path(sys.executable).parent / "backfillctl")


def filled(place: Path | str) -> dict[str, Any]:
    """A store at `place` with a row in every table; its dump."""
    store = seeded(open_store(place))
    store.save_apply([backfill("third")], [instance("t1", backfill="third")], [], [], at=AT, **WHO)
    for ident in ("a1", "b1", "o1"):
        start(store, ident)
        store.set_attempt_handle(ident, 1, {"pid": 7, "base": f"/r/{ident}"}, f"/r/{ident}.log")
    end(store, "a1", 1, "failed", instance_state="pending")  # retried
    start(store, "a1")
    end(store, "a1", 2)
    end(store, "o1", 1)
    store.save_log("o1", 1, "row 1\nrow 2\n", size=100, at=AT + 20)
    store.acquire_lease("ctl-1", pid=1, host="h", at=AT, ttl=30)
    store.acquire_lease("ctl-2", pid=2, host="h", at=AT + 100, ttl=30)  # epoch 2, expired
    store.transition(["t1"], "cancelled", allowed=["pending"], at=AT, finished_at=AT, **WHO)
    store.delete_instances(["t1"], finished_before=AT + 1)  # the newest events go
    dumped = dump(store)
    store.close()
    return dumped


def dump(store: Any) -> dict[str, Any]:
    with store.rows() as rows:
        tables = {t: [r for batch in rows.batches(t, 3) for r in batch] for t in rows.tables()}
        return {"store_id": rows.store_id(), "event_counter": rows.event_counter(), **tables}


def indexes(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
        ).fetchall()


def test_every_column_of_the_schema_is_moved(tmp_path: Path) -> None:
    open_store(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = [
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in ("meta", "sqlite_sequence")
        ]
        schema = {t: tuple(c[1] for c in db.execute(f"PRAGMA table_info({t})")) for t in names}
    assert {t: columns for t, (_, columns) in TABLES.items()} == schema


def test_a_sqlite_store_moves_to_a_new_file_whole(tmp_path: Path) -> None:
    source = filled(tmp_path / "a.db")
    result = run(
        "state",
        "migrate",
        "--from",
        f"sqlite:///{tmp_path}/a.db",
        "--to",
        str(tmp_path / "new" / "b.db"),
        "--batch",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"moved {tmp_path / 'a.db'} to {tmp_path / 'new' / 'b.db'} in ")
    assert "3 backfills, 4 instances, 4 attempts" in lines[0]
    assert lines[1] == f"store id {source['store_id']}, lease epoch 2: counts verified"
    assert "copying instances: 4 of 4" in result.stderr
    moved = open_store(tmp_path / "new" / "b.db")
    assert dump(moved) == source
    assert moved.store_id == source["store_id"]
    assert indexes(tmp_path / "new" / "b.db") == indexes(tmp_path / "a.db")  # made again
    # ids keep growing past the source's last (gc deleted the newest events)
    moved.add_events("note", [(None, "after the move")], at=AT, **WHO)
    assert moved.last_event_id() == source["event_counter"] + 1
    assert moved.acquire_lease("ctl-3", pid=3, host="h", at=AT + 200, ttl=30).epoch == 3


def test_a_target_that_is_not_empty_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    filled(tmp_path / "a.db")
    target = seeded(open_store(tmp_path / "b.db"))
    before = dump(target)
    target.close()
    result = run(
        "state", "migrate", "--from", str(tmp_path / "a.db"), "--to", str(tmp_path / "b.db")
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: the target {tmp_path / 'b.db'} is not empty: it holds 1 resource groups, "
        "2 backfills, 4 instances, 6 events"
    )
    assert "Nothing was written" in result.stderr
    assert dump(open_store(tmp_path / "b.db")) == before


def test_a_source_whose_lease_is_held_is_refused_naming_the_holder(tmp_path: Path) -> None:
    import socket
    import time

    store = open_store(tmp_path / "a.db")
    store.acquire_lease("ctl-9", pid=99, host=socket.gethostname(), at=time.time(), ttl=60)
    store.close()
    result = run(
        "state", "migrate", "--from", str(tmp_path / "a.db"), "--to", str(tmp_path / "b.db")
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: a controller holds the lease of {tmp_path / 'a.db'}: ctl-9 (pid 99 on "
        f"{socket.gethostname()}, epoch 1), for "
    )
    assert not (tmp_path / "b.db").exists()  # no target made


def test_a_missing_newer_or_same_source_is_refused(tmp_path: Path) -> None:
    missing = run("state", "migrate", "--from", str(tmp_path / "no.db"), "--to", "x.db")
    assert (missing.exit_code, missing.stderr.splitlines()[0]) == (
        2,
        f"error: no state store at {tmp_path / 'no.db'}",
    )
    open_store(tmp_path / "a.db").close()
    with sqlite3.connect(tmp_path / "a.db") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer = run(
        "state", "migrate", "--from", str(tmp_path / "a.db"), "--to", str(tmp_path / "b.db")
    )
    assert newer.exit_code == 2
    assert f"has schema version {SCHEMA_VERSION + 1}; this backfillctl knows up to" in newer.stderr
    assert not (tmp_path / "b.db").exists()
    same = run(
        "state", "migrate", "--from", f"sqlite:///{tmp_path}/a.db", "--to", str(tmp_path / "a.db")
    )
    assert (same.exit_code, same.stderr.splitlines()[0]) == (
        2,
        "error: --from and --to name the same store",
    )


# -- PostgreSQL (BACKFILLCTL_PG=1) ------------------------------------------------------


def backfillctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BACKFILLCTL, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_sqlite_to_postgresql_and_back_is_the_same_store(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    source = filled(tmp_path / "a.db")
    url = postgres.database()
    there = backfillctl(
        "state", "migrate", "--from", "sqlite:///a.db", "--to", url, "--batch", "2", cwd=tmp_path
    )
    assert there.returncode == 0, there.stderr
    assert PASSWORD not in there.stdout + there.stderr
    assert url.replace(PASSWORD, "***") in there.stdout
    pg = open_store(url)
    assert dump(pg) == source
    pg.close()

    back = backfillctl("state", "migrate", "--from", url, "--to", "back.db", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert PASSWORD not in back.stdout + back.stderr
    moved = open_store(tmp_path / "back.db")
    assert dump(moved) == source
    moved.add_events("note", [(None, "after two moves")], at=AT, **WHO)
    assert moved.last_event_id() == source["event_counter"] + 1

    # the PostgreSQL store's own event ids go on past the source's too
    pg = open_store(url)
    pg.add_events("note", [(None, "after the move")], at=AT, **WHO)
    assert pg.last_event_id() == source["event_counter"] + 1


def test_a_postgresql_target_that_is_not_empty_is_refused_without_its_password(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    filled(tmp_path / "a.db")
    url = postgres.database()
    target = seeded(open_store(url))
    before = dump(target)
    target.close()
    refused = backfillctl("state", "migrate", "--from", "a.db", "--to", url, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.startswith(
        f"error: the target {url.replace(PASSWORD, '***')} is not empty: it holds "
    )
    assert PASSWORD not in refused.stderr
    assert dump(open_store(url)) == before
    wrong = backfillctl(
        "state",
        "migrate",
        "--from",
        "a.db",
        "--to",
        postgres.url("nope", password="secret-pw"),
        cwd=tmp_path,
    )
    assert wrong.returncode == 2 and "secret-pw" not in wrong.stderr
