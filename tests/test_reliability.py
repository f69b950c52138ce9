"""Reliability with real processes and files (issue 4): no mocks of the OS.

- kill -9 of the controller mid-run, then a restart: no instance lost, none run twice,
  every attempt that ended meanwhile recorded;
- SIGTERM: nothing new starts, running attempts go on and the next controller adopts
  them;
- two controllers on one store: the second waits for the lease and says so;
  (these three also on a PostgreSQL store, under BACKFILLCTL_PG=1: `store` below);
- a locked or a corrupt state file: a clear error, and nothing lost;
- a command that hangs: the timeout kills it and its children.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.runtime.controller import Controller
from backfill_ctl.state import open_store
from tests.builders import API, backfill, dump, node, resource_group, workspace
from tests.cli.helpers import run, write_files

CONFIG = {"apiVersion": API, "kind": "Config", "spec": {"backend": "local"}}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the state is: a SQLite file, or a new database of the PostgreSQL tier's
    server (skipped without BACKFILLCTL_PG=1)."""
    if request.param == "sqlite":
        return tmp_path / "state.db"
    return str(request.getfixturevalue("pg_url"))


def specs(root: Path, *docs: dict[str, Any]) -> Path:
    write_files(
        root / "specs",
        {
            "backfillctl.yaml": dump(CONFIG),
            "all.yaml": dump(workspace(operators=("ops",)), resource_group("rg", 3), *docs),
        },
    )
    return root / "specs"


def wait_until(
    what: Any, timeout: float, message: str, said: Callable[[], str] = lambda: ""
) -> Any:
    """`what()` once it is true; an AssertionError after `timeout` s, with `said()` (what
    the processes involved logged, to tell why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}\n{said()}")


def controller(
    spec_dir: Path, db: Path | str, log: Path, *extra: str, prefix: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """`backfillctl controller` on the store `db` (a file or a URL), ticking every 0.1 s,
    run in `log`'s directory (a PostgreSQL store's backend files go there); `prefix`
    runs it through another command (`unshare --pid ...`)."""
    return subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "backfill_ctl",
            "controller",
            str(spec_dir),
            "--state",
            str(db),
            "--interval",
            "0.1",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        cwd=log.parent,
    )


def alive(pid: int) -> bool:
    """Running, and not a zombie nobody reaped (PID 1 in a container may not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


MARKING = (
    'echo "start $$" >> "$MARKS/$BACKFILL_TASKID"; sleep 0.8; '
    'echo "end $$" >> "$MARKS/$BACKFILL_TASKID"'
)


def marking(
    tmp_path: Path,
    last_day: str,
    seconds: float,
    *,
    until: Path | None = None,
    db: Path | str | None = None,
) -> tuple[Path, Path | str, Path]:
    """Applied: one node over 2024-03-01..`last_day` in 3 groups, each attempt marking
    its start and end in marks/<instance> around a sleep (with `until`: running until
    that file exists, however slow the machine). (specs, store, marks)"""
    marks = tmp_path / "marks"
    marks.mkdir()
    wait = f"while [ ! -e '{until}' ]; do sleep 0.05; done" if until else f"sleep {seconds}"
    command = MARKING.replace("sleep 0.8", wait)
    spec_dir = specs(
        tmp_path,
        node("work", resourceGroup="rg", run={"command": command, "env": {"MARKS": str(marks)}}),
        backfill(
            select={"method": "descendants", "roots": ["work"]},
            dates=[{"from": "2024-03-01", "to": last_day}],
            groups=3,
        ),
    )
    db = db or tmp_path / "state.db"
    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    return spec_dir, db, marks


def test_kill_9_of_the_controller_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, store_at: Path | str
) -> None:
    spec_dir, db, marks = marking(tmp_path, "2024-03-09", 0.8, db=store_at)
    log = tmp_path / "controller.log"
    first = controller(spec_dir, db, log)
    store = open_store(db)
    try:
        wait_until(lambda: len(store.attempts(states=["running"])) >= 2, 30, "two attempts")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    running_at_kill = {a.instance for a in store.attempts(states=["running", "starting"])}
    assert running_at_kill
    time.sleep(1.2)  # they finish while no controller runs
    second = controller(spec_dir, db, log)
    try:
        wait_until(
            lambda: len(store.instances(states=["succeeded"])) == 9, 60, "every instance to succeed"
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    attempts = store.attempts()
    assert len(attempts) == 9  # one each: nothing was run a second time
    assert all(a.state == "succeeded" and a.exit_code == 0 and a.finished_at for a in attempts)
    for instance in store.instances():
        lines = (marks / instance.id).read_text().splitlines()
        assert [x.split()[0] for x in lines] == ["start", "end"], instance.id
    text = log.read_text()
    assert "taking over the lease of a controller that is gone" in text
    assert text.count("adopted attempt") >= len(running_at_kill)


def test_sigterm_starts_nothing_new_and_leaves_running_attempts_to_be_adopted(
    tmp_path: Path, store_at: Path | str
) -> None:
    go = tmp_path / "go"  # the attempts run until it exists: still running when asked
    spec_dir, db, marks = marking(tmp_path, "2024-03-06", 0, until=go, db=store_at)
    log = tmp_path / "controller.log"
    first = controller(spec_dir, db, log)
    store = open_store(db)
    wait_until(lambda: len(store.attempts(states=["running"])) == 3, 120, "three attempts")
    first.send_signal(signal.SIGTERM)
    assert first.wait(10) == 0  # at once: it does not wait for the attempts

    running = store.attempts(states=["running"])
    assert len(running) == 3 and len(store.attempts()) == 3  # nothing new was started
    for attempt in running:  # the commands go on without a controller
        assert (marks / attempt.instance).read_text().split()[0] == "start"
        assert alive(int(attempt.handle["pid"]))
    second = controller(spec_dir, db, log)
    try:
        wait_until(lambda: log.read_text().count("adopted attempt") == 3, 60, "the adoption")
        go.touch()
        wait_until(
            lambda: len(store.instances(states=["succeeded"])) == 6,
            120,
            "every instance to succeed",
        )
    finally:
        go.touch()
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    assert len(store.attempts()) == 6  # the three were adopted, not run again
    assert log.read_text().count("adopted attempt") == 3


def test_sighup_when_its_terminal_is_gone_ends_a_controller_as_sigterm_does(
    tmp_path: Path,
) -> None:
    """An ssh session that drops: the controller's terminal is gone (writing to it fails)
    and it gets SIGHUP. It lets go of the lease and exits 0, its attempts running on for
    the next controller, as on SIGTERM; not killed holding the lease."""
    import os
    import pty

    go = tmp_path / "go"
    spec_dir, db, _ = marking(tmp_path, "2024-03-06", 0, until=go)
    main, terminal = pty.openpty()
    first = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "controller", str(spec_dir), "--state", str(db)],
        stdout=terminal,
        stderr=terminal,
        cwd=tmp_path,
    )
    os.close(terminal)
    store = open_store(db)
    try:
        wait_until(lambda: len(store.attempts(states=["running"])) == 3, 120, "three attempts")
        os.close(main)  # the terminal is gone: a write to it fails (EIO)
        first.send_signal(signal.SIGHUP)
        assert first.wait(20) == 0
        lease = store.lease()
        assert lease is not None and lease.expires_at == 0  # let go of, not left to expire
        assert len(store.attempts(states=["running"])) == 3 == len(store.attempts())
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
            first.wait(10)


def test_a_second_controller_waits_for_the_lease_and_says_so(
    tmp_path: Path, store_at: Path | str
) -> None:
    spec_dir = specs(tmp_path, node("a", resourceGroup="rg"), backfill())
    db = store_at
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = controller(spec_dir, db, log_a)
    b = None
    try:
        wait_until(lambda: log_a.exists() and "drives" in log_a.read_text(), 30, "controller A")
        b = controller(spec_dir, db, log_b)
        wait_until(lambda: "waiting for the lease" in log_b.read_text(), 30, "B to wait")
        assert "drives" not in log_b.read_text()
        a.send_signal(signal.SIGTERM)
        assert a.wait(20) == 0
        wait_until(lambda: "drives" in log_b.read_text(), 30, "B to take over")
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)


def test_a_locked_store_is_a_clear_error_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = specs(tmp_path, node("a", resourceGroup="rg"), backfill())
    db = tmp_path / "state.db"
    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    before = open_store(db).counts()
    write_files(spec_dir, {"more.yaml": dump(backfill("more"))})  # something to write
    monkeypatch.setattr("backfill_ctl.state.sqlite.BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        result = run("apply", str(spec_dir), "--state", str(db))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2:] == [
        f"error: the state store {db} is locked by another process",
        "  hint: wait for the other backfillctl to finish, or find it (fuser on the file); "
        "nothing was changed",
    ]
    assert open_store(db).counts() == before


def test_a_corrupt_store_is_refused_untouched(tmp_path: Path) -> None:
    spec_dir = specs(tmp_path, node("a", resourceGroup="rg"), backfill())
    db = tmp_path / "state.db"
    garbage = b"this is not SQLite" * 512
    db.write_bytes(garbage)
    result = run("apply", str(spec_dir), "--state", str(db))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2] == (
        f"error: the state store {db} is not a usable SQLite database (file is not a database)"
    )
    assert db.read_bytes() == garbage


def test_a_hanging_command_and_its_children_are_killed_by_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    spec_dir = specs(
        tmp_path,
        node(
            "hang",
            resourceGroup="rg",
            run={"command": f"sleep 60 & echo $! > {pidfile}; sleep 60", "timeout": "1s"},
        ),
        backfill(select={"method": "descendants", "roots": ["hang"]}),
    )
    db = tmp_path / "state.db"
    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    store = open_store(db)
    c = Controller(store, LocalBackend(tmp_path / "runs"))
    assert c.acquire(wait=False)
    c.load()
    started = time.monotonic()
    wait_until(lambda: c.tick() and store.instances(states=["failed"]), 20, "the timeout")
    assert time.monotonic() - started < 10
    (instance,) = store.instances()
    assert instance.reason == "timed out after 1s"
    (attempt,) = store.attempts()
    child = int(pidfile.read_text())
    wait_until(lambda: not alive(child), 10, "the child to die")
    wait_until(lambda: not alive(int(attempt.handle["pid"])), 10, "the group leader to die")
    c.release()


def test_a_group_id_that_outlived_its_wrapper_is_not_signalled(tmp_path: Path) -> None:
    # Cancelling an attempt whose process is long gone must not fail or hit anyone else.
    backend = LocalBackend(tmp_path)
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    backend.cancel(("i", 1), {"pid": gone.pid, "base": str(tmp_path / "i.1")}, "stop")
    assert tmp_path.exists() and not alive(gone.pid)
