"""What is the PostgreSQL store's own, against a real server (tests/tools/postgres.py;
BACKFILLCTL_PG=1): its schema version and refusals that leave a database untouched,
errors that name the server but never the password (from the real CLI too), writers of
two processes taking turns, a server restarted between calls, and the README's example
run to the end on it. What every store does is in the contract (test_contract.py)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.state import NoStore, StateError, StoreLocked, StoreUnavailable, open_store
from backfill_ctl.state import sqlite as sqlite_module
from backfill_ctl.state.postgres import redact
from backfill_ctl.state.sqlite import SCHEMA_VERSION
from tests.state.contract import AT, WHO, instance, seeded
from tests.tools.postgres import PASSWORD, PostgresServer

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-pw"
BACKFILLCTL = str(Path(sys.executable).parent / "backfillctl")  # the installed command


def psql(server: PostgresServer, url: str, statement: str) -> str:
    return server.sql(statement, database=url.rsplit("/", 1)[1])


def test_a_new_store_has_the_current_schema_and_an_identity(pg_url: str) -> None:
    store = open_store(pg_url)
    assert store.path == redact(pg_url) and ":***@" in store.path
    assert len(store.store_id) == 12
    store.close()
    assert open_store(pg_url, create=False).store_id == store.store_id


def test_no_store_is_made_when_it_should_exist(postgres: PostgresServer, pg_url: str) -> None:
    with pytest.raises(NoStore, match="no state store at"):
        open_store(pg_url, create=False)
    assert (
        psql(postgres, pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    )


def test_a_store_of_a_newer_backfillctl_is_refused_untouched(
    postgres: PostgresServer, pg_url: str
) -> None:
    seeded(open_store(pg_url)).close()
    psql(
        postgres,
        pg_url,
        f"UPDATE meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'",
    )
    dump = "SELECT string_agg(i::text, ',' ORDER BY id) FROM instances i"
    before = psql(postgres, pg_url, dump)

    with pytest.raises(StateError) as caught:
        open_store(pg_url)

    assert str(caught.value) == (
        f"the state store {redact(pg_url)} has schema version {SCHEMA_VERSION + 1}; this "
        f"backfillctl knows up to {SCHEMA_VERSION}"
    )
    assert caught.value.hint == "upgrade backfillctl; the store was not modified"
    assert psql(postgres, pg_url, dump) == before


def test_tables_that_are_not_a_store_s_are_refused_untouched(
    postgres: PostgresServer, pg_url: str
) -> None:
    psql(postgres, pg_url, "CREATE TABLE instances (x int); GRANT ALL ON instances TO PUBLIC")
    with pytest.raises(
        StateError, match=r"has tables that are not a backfillctl store's \(instances"
    ):
        open_store(pg_url)
    tables = "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
    assert psql(postgres, pg_url, tables) == "instances"


@pytest.mark.parametrize(
    ("where", "error", "said"),
    [
        (f"{SECRET}@127.0.0.1:1/x", StoreUnavailable, "cannot reach the state store"),
        (f"{SECRET}@{{server}}/{{db}}", StateError, "cannot log in to the state store"),
        ("{password}@{server}/nodb", StateError, "names a database that does not exist"),
    ],
)
def test_errors_name_the_server_and_never_the_password(
    postgres: PostgresServer, pg_url: str, where: str, error: type[Exception], said: str
) -> None:
    server, db = f"{postgres.host}:{postgres.port}", pg_url.rsplit("/")[-1]
    url = "postgresql://backfillctl:" + where.format(server=server, db=db, password=PASSWORD)
    with pytest.raises(error) as caught:
        open_store(url)
    assert isinstance(caught.value, StateError)
    text = f"{caught.value} {caught.value.hint}"
    assert said in text and redact(url) in text
    assert SECRET not in text and PASSWORD not in text


def test_the_real_cli_says_an_unreachable_store_without_the_password() -> None:
    done = subprocess.run(
        [
            BACKFILLCTL, "get", "backfills",
            "--state-file", f"postgresql://u:{SECRET}@127.0.0.1:1/x",
        ],
        capture_output=True, text=True, check=False, env=_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "cannot reach the state store postgresql://u:***@127.0.0.1:1/x" in done.stderr
    assert SECRET not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_the_password_may_come_from_the_environment(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = pg_url.split(":")[2].split("@")[0]
    monkeypatch.setenv("PGPASSWORD", password)
    store = open_store(pg_url.replace(f":{password}@", "@"))
    assert "***" not in store.path and store.store_id


def test_a_held_write_lock_is_a_clear_error_after_the_busy_timeout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from backfill_ctl.state.postgres.connection import WRITE_LOCK

    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT", 0.2)
    store = seeded(open_store(pg_url))
    with psycopg.connect(pg_url) as other:  # a transaction until the block ends
        other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        with pytest.raises(StoreLocked, match="is locked by another process"):
            store.transition(["a1"], "frozen", allowed=["pending"], at=AT, **WHO)
    assert store.instances(ids=["a1"])[0].state == "pending"
    assert store.transition(["a1"], "frozen", allowed=["pending"], at=AT, **WHO) == ["a1"]


@pytest.mark.parametrize("read_first", [False, True], ids=["write", "read"])
def test_a_batch_paused_past_the_idle_limit_is_unavailable_then_connects_again(
    pg_url: str, read_first: bool
) -> None:
    """A process paused mid-batch (SIGSTOP) past the idle limit the server enforces
    (`_hold_limit`: a lease holder's) finds its session ended: the batch's next call is
    StoreUnavailable, the one a controller waits out, never psycopg's own error (which
    ended a controller); none of the batch is written, and the next call connects again."""
    store = seeded(open_store(pg_url))
    store._hold_limit(1.0)
    with pytest.raises(StoreUnavailable, match="cannot be written"), store.batch():
        store.transition(["a1"], "frozen", allowed=["pending"], at=AT, **WHO)
        store.instances(ids=["a1"])  # sent: the transaction is open on the server
        time.sleep(2.5)  # past the limit: the server ends the session
        if read_first:
            store.instances(ids=["a1"])
        store.transition(["b1"], "frozen", allowed=["pending"], at=AT, **WHO)
    states = {i.id: i.state for i in store.instances(ids=["a1", "b1"])}
    assert states == {"a1": "pending", "b1": "pending"}
    assert store.transition(["a1"], "frozen", allowed=["pending"], at=AT, **WHO) == ["a1"]


def _race(url: str, to_state: str, ids: list[str], start: Any) -> list[str]:
    store = open_store(url)
    start.wait()
    return [i for i in ids if store.transition([i], to_state, allowed=["pending"], at=AT, **WHO)]


def test_two_processes_writing_at_once_move_each_instance_once(pg_url: str) -> None:
    ids = [f"i{n:03d}" for n in range(150)]
    store = open_store(pg_url)
    store.save_apply([], [instance(i, backfill="bf") for i in ids], [], [], at=AT, **WHO)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        start = manager.Barrier(2)
        first = pool.apply_async(_race, (pg_url, "frozen", ids, start))
        second = pool.apply_async(_race, (pg_url, "cancelled", ids[::-1], start))
        frozen, cancelled = first.get(timeout=120), second.get(timeout=120)

    assert sorted(frozen + cancelled) == ids and frozen and cancelled  # each exactly once
    states = {i.id: i.state for i in store.instances()}
    assert {i for i, s in states.items() if s == "frozen"} == set(frozen)
    moves = [e.instance for e in store.events() if e.kind == "transition"]
    assert sorted(moves) == ids


def test_a_restarted_server_fails_one_call_then_the_store_connects_again(
    postgres: PostgresServer, pg_url: str
) -> None:
    store = seeded(open_store(pg_url))
    postgres.restart()
    with pytest.raises(StoreUnavailable, match="cannot be written") as caught:
        store.instances()
    assert redact(pg_url) in str(caught.value)
    assert [i.id for i in store.instances(backfill="bf")] == ["a1", "b1", "a2"]
    postgres.restart()
    with pytest.raises(StoreUnavailable):
        store.transition(["a1"], "frozen", allowed=["pending"], at=AT, **WHO)
    assert store.transition(["a1"], "frozen", allowed=["pending"], at=AT, **WHO) == ["a1"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKFILLCTL_", "PG"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_the_example_runs_to_the_end_on_a_postgresql_store(pg_url: str, tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("out", "__pycache__")
    )

    def backfillctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BACKFILLCTL, *args],
            capture_output=True, text=True, check=False, cwd=tmp_path, env=_env(), timeout=600,
        )  # fmt: skip

    applied = backfillctl("apply", "specs/", "--as", "oncall", "--wait", "--state", pg_url)

    assert applied.returncode == 0, applied.stderr
    assert applied.stderr.splitlines()[-3:] == [
        "backfill/clicks-late-data: succeeded",
        "backfill/dw-rebuild-2024-01: succeeded",
        "backfill/fix-orders-2024-03: succeeded",
    ]
    listed = backfillctl("get", "backfills", "--state-file", pg_url)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["Succeeded"] * 3
    store = open_store(pg_url)
    assert {i.state for i in store.instances()} == {"succeeded"}
    assert len(store.instances()) == 82
    assert not (tmp_path / ".backfillctl" / "state.db").exists()  # the logs are there
    assert (tmp_path / ".backfillctl" / "runs" / store.store_id).is_dir()
    assert PASSWORD not in applied.stdout + applied.stderr + listed.stdout + listed.stderr


# -- without a server ------------------------------------------------------------------


def test_a_password_is_never_shown() -> None:
    assert redact("postgresql://ann:pw@db:5432/bf?sslmode=require") == (
        "postgresql://ann:***@db:5432/bf?sslmode=require"
    )
    assert redact("postgres://db/bf?password=pw&user=ann") == (
        "postgres://db/bf?password=***&user=ann"
    )
    assert redact("postgresql://ann@db/bf") == "postgresql://ann@db/bf"


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StateError, match="psycopg is not installed") as caught:
        open_store(f"postgresql://u:{SECRET}@127.0.0.1:1/x")
    assert caught.value.hint == "pip install 'backfillctl[postgresql]'"
    assert SECRET not in str(caught.value)


def test_the_cli_takes_a_url_from_the_flag_the_environment_or_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from backfill_ctl.cli.state import state_dir, state_file
    from backfill_ctl.spec.loader import Specs

    url = "postgresql://ann@db/bf"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKFILLCTL_STATE", raising=False)
    assert state_file(url) == url
    assert state_file("s.db") == tmp_path / "s.db"
    monkeypatch.setenv("BACKFILLCTL_STATE", "postgres://db/x")
    assert state_file(None) == "postgres://db/x"
    monkeypatch.delenv("BACKFILLCTL_STATE")
    specs = Specs(config=dataclasses.replace(Specs().config, state=url))
    assert state_file(None, specs) == url
    assert state_dir(url) == tmp_path / ".backfillctl"
    assert state_dir(tmp_path / "x" / "s.db") == tmp_path / "x"
