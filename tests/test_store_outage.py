"""`apply --wait` and `wait` ride out a state store that is away for a while, with real
processes: a PostgreSQL server stopped mid-run and started again (BACKFILLCTL_PG=1,
tests/tools/postgres.py), and a SQLite store whose write lock another process holds past
the busy timeout. The workload is a chain a -> b -> c over 10 dates, one date at a time.

- apply --wait running the controller itself: it says once that it waits for the
  store, and again when it is back, and exits 0 when the backfill succeeded;
- apply --wait following another controller, and wait, on the same outage: likewise;
- a store still away when --timeout runs out: a clear message, the timeout's exit code,
  and nothing that says the committed apply changed nothing;
- a store away longer than they wait for one (patience.OUTAGE_LIMIT, made short here; in
  process): a clear error, whose hint says the specs were applied.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backfill_ctl.cli import patience
from backfill_ctl.state import StateError, open_store
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.test_reliability import controller, specs, wait_until
from tests.tools.postgres import PostgresServer

OUTAGE = 8.0  # seconds the store is away
SUCCEEDED_FIRST = 6  # instances succeeded before the store goes away (of 30)


def chain(tmp_path: Path, seconds: float = 0.3) -> Path:
    """The specs: a -> b -> c, each a `sleep`, over 2024-03-01..10 in one group."""
    nodes = [
        node(name, resourceGroup="rg", upstream=up, command=f"sleep {seconds}")
        for name, up in (("a", []), ("b", ["a"]), ("c", ["b"]))
    ]
    dates = [{"from": "2024-03-01", "to": "2024-03-10"}]
    return specs(tmp_path, *nodes, backfill(dates=dates, groups=1))


def backfillctl(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`backfillctl ARGS` in `log`'s directory (a PostgreSQL store's backend files go
    there), its stderr in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        cwd=log.parent,
    )


def succeeded(url: Path | str) -> int:
    """Instances succeeded so far, read on a connection of its own (-1: unreachable)."""
    try:
        store = open_store(url, create=False)
    except StateError:
        return -1
    try:
        return len(store.instances(states=["succeeded"]))
    except StateError:
        return -1
    finally:
        store.close()


def ended(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running after {timeout} s:\n{log.read_text()}") from None


def told(log: Path, words: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if words in line]


def outage(postgres: PostgresServer, seconds: float) -> None:
    """The server stopped (fast shutdown: every session ended) for `seconds`."""
    postgres.stop()
    try:
        time.sleep(seconds)
    finally:
        postgres.restart()


def test_apply_wait_running_the_controller_rides_out_a_postgresql_outage(
    tmp_path: Path, pg_url: str, postgres: PostgresServer
) -> None:
    spec_dir, log = chain(tmp_path), tmp_path / "apply.log"
    proc = backfillctl(log, "apply", str(spec_dir), "--as", "ops", "--wait", "--state", pg_url)
    try:
        wait_until(lambda: succeeded(pg_url) >= SUCCEEDED_FIRST, 120, "the run", log.read_text)
        outage(postgres, OUTAGE)
        code = ended(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 0, text
    assert "error:" not in text
    assert "backfill/bf: succeeded" in text
    assert len(told(log, "waiting for the state store")) == 1, text
    assert len(told(log, "the state store answers again")) == 1, text
    assert succeeded(pg_url) == 30


def test_apply_wait_following_a_controller_and_wait_ride_out_a_postgresql_outage(
    tmp_path: Path, pg_url: str, postgres: PostgresServer
) -> None:
    spec_dir = chain(tmp_path)
    logs = {n: tmp_path / f"{n}.log" for n in ("controller", "apply", "wait")}
    driver = controller(spec_dir, pg_url, logs["controller"], "--as", "ops")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        wait_until(lambda: succeeded(pg_url) >= 1, 120, "the controller to run it")
        procs["apply"] = backfillctl(
            logs["apply"], "apply", str(spec_dir), "--as", "ops", "--wait", "--state", pg_url
        )
        procs["wait"] = backfillctl(
            logs["wait"], "wait", "backfill/bf", "--for=condition=Succeeded", "--timeout", "5m",
            "--state", pg_url,
        )  # fmt: skip
        wait_until(lambda: "following its progress" in logs["apply"].read_text(), 60, "apply")
        wait_until(lambda: succeeded(pg_url) >= SUCCEEDED_FIRST, 120, "the run")
        outage(postgres, OUTAGE)
        codes = {name: ended(proc, logs[name]) for name, proc in procs.items()}
    finally:
        for proc in [*procs.values(), driver]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
    assert codes == {"apply": 0, "wait": 0}, {n: p.read_text() for n, p in logs.items()}
    for name in ("apply", "wait"):
        text = logs[name].read_text()
        assert "error:" not in text, text
        assert len(told(logs[name], "waiting for the state store")) == 1, text
        assert len(told(logs[name], "the state store answers again")) == 1, text
    assert "backfill/bf: succeeded" in logs["apply"].read_text()
    assert "backfill/bf condition met: Succeeded" in logs["wait"].read_text()


def test_a_store_still_away_at_the_timeout_is_said_and_the_apply_stays_committed(
    tmp_path: Path, pg_url: str, postgres: PostgresServer
) -> None:
    spec_dir = chain(tmp_path, seconds=0.5)
    logs = {n: tmp_path / f"{n}.log" for n in ("apply", "wait")}
    apply = backfillctl(
        logs["apply"], "apply", str(spec_dir), "--as", "ops", "--wait", "--timeout", "12s",
        "--state", pg_url,
    )  # fmt: skip
    try:
        wait_until(lambda: succeeded(pg_url) >= 1, 60, "the run", logs["apply"].read_text)
        waiting = backfillctl(
            logs["wait"], "wait", "bf", "--for=condition=Succeeded", "--timeout", "4s",
            "--state", pg_url,
        )  # fmt: skip
        wait_until(lambda: logs["wait"].read_text(), 30, "wait to look")
        postgres.stop()
        codes = ended(apply, logs["apply"], 60), ended(waiting, logs["wait"], 60)
    finally:
        postgres.restart()
        if apply.poll() is None:
            apply.kill()
    assert codes == (1, 124), {n: p.read_text() for n, p in logs.items()}
    for name in ("apply", "wait"):
        text = logs[name].read_text()
        assert "nothing was changed" not in text, text
        assert len(told(logs[name], "waiting for the state store")) == 1, text
    apply_text = logs["apply"].read_text()
    assert "timed out" in apply_text
    assert "the state store cannot be reached: how backfill/bf stands is unknown" in apply_text
    wait_text = logs["wait"].read_text()
    assert "error: timed out after 4s waiting for condition=Succeeded" in wait_text
    assert "the state store cannot be reached: how backfill/bf stands is unknown" in wait_text


def test_apply_wait_rides_out_a_sqlite_store_locked_past_the_busy_timeout(
    tmp_path: Path,
) -> None:
    spec_dir, log, db = chain(tmp_path), tmp_path / "apply.log", tmp_path / "state.db"
    proc = backfillctl(log, "apply", str(spec_dir), "--as", "ops", "--wait", "--state", str(db))
    try:
        wait_until(lambda: succeeded(db) >= SUCCEEDED_FIRST, 120, "the run", log.read_text)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer, paused mid-write
        try:
            time.sleep(12.0)  # past the busy timeout (10 s)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        code = ended(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 0, text
    assert "is locked by another process" in text
    assert "error:" not in text
    assert "backfill/bf: succeeded" in text
    assert succeeded(db) == 30


def stop_when(postgres: PostgresServer, ready: Callable[[], bool]) -> threading.Thread:
    """A thread that stops the server once `ready()` (the main thread starts it again:
    the server dies with the thread that started it)."""

    def stop() -> None:
        wait_until(ready, 60, "the moment to stop the server")
        postgres.stop()

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    return thread


def test_apply_wait_gives_up_on_a_store_away_too_long_saying_the_specs_were_applied(
    tmp_path: Path,
    pg_url: str,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(patience, "OUTAGE_LIMIT", 2.0)
    monkeypatch.chdir(tmp_path)  # the local backend's files: .backfillctl/ here
    spec_dir = chain(tmp_path)
    thread = stop_when(postgres, lambda: succeeded(pg_url) >= 1)
    try:
        result = run("apply", str(spec_dir), "--as", "ops", "--wait", "--state", pg_url)
    finally:
        thread.join(60)
        postgres.restart()
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len([line for line in lines if "waiting for the state store (2 s at most)" in line]) == 1
    assert lines[-2].startswith("error: the state store has been away for ")
    assert ": stopped waiting for it (" in lines[-2]
    assert lines[-1].startswith("  hint: the specs were applied (plan digest ")
    assert lines[-1].endswith(
        "the backfills go on whenever a controller runs (backfillctl controller, or apply "
        "--wait again, which applies nothing more); backfillctl wait backfill/bf "
        "--for=condition=Succeeded follows them"
    )
    assert "nothing was changed" not in result.stderr
    assert len(open_store(pg_url).instances()) == 30  # applied, whatever the wait said


def test_wait_gives_up_on_a_store_away_too_long(
    tmp_path: Path,
    pg_url: str,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(patience, "OUTAGE_LIMIT", 2.0)
    spec_dir = chain(tmp_path)
    assert run("apply", str(spec_dir), "--as", "ops", "--state", pg_url).exit_code == 0
    started = time.monotonic()
    thread = stop_when(postgres, lambda: time.monotonic() - started > 1.5)
    try:
        result = run("wait", "bf", "--for=condition=Succeeded", "--state", pg_url)
    finally:
        thread.join(60)
        postgres.restart()
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-2].startswith("error: the state store has been away for ")
    assert lines[-1] == (
        "  hint: nothing was changed by waiting; when the store is back, run the same command "
        "again (backfillctl get backfills says where each backfill is)"
    )
