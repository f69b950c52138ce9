"""Exactly once under ordinary faults (issue 8), with real controller processes.

Each command takes a per-instance lock (`flock -n`) before it starts: the kernel holds
it while any process of the attempt lives, so an attempt that starts while an earlier
one of the same instance still runs writes `overlap` to the trace — a double run is
seen, not inferred from timestamps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.test_reliability import alive, specs, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from backfill_ctl.core.records import AttemptRecord
    from backfill_ctl.state import RunStore

CONTROLLER = (sys.executable, "-m", "backfill_ctl", "controller")
# `$$$$` is the shell's `$$` (a spec writes `$$` for a literal `$`); `$BACKFILLCTL_ATTEMPT`
# (the local backend's marker) ends in `<instance>.<attempt>`: which attempt really ran.
TRACED = (
    'exec 9>>"$LOCKS/$BACKFILL_TASKID"; flock -n 9 || echo "overlap $BACKFILL_TASKID" >> "$TRACE"; '
    'echo "start $BACKFILL_TASKID $$$$ $BACKFILLCTL_ATTEMPT" >> "$TRACE"; {body}; '
    'echo "end $BACKFILL_TASKID $$$$ $BACKFILLCTL_ATTEMPT" >> "$TRACE"'
)


@pytest.fixture(autouse=True)
def _nothing_left_running(tmp_path: Path) -> Iterator[None]:
    """After each test, pass or fail, nothing of it runs on: a test that failed midway
    leaves its controllers, and the attempts a stopped controller leaves for the next one
    (a `held` one would never end). Its processes name tmp_path in their command line
    (controllers) or their environment (every process of an attempt)."""
    yield
    deadline = time.monotonic() + 20
    if left := _naming(tmp_path):  # said, so that a passing test that leaks is seen
        warnings.warn(f"killing what the test left running: pids {left}", stacklevel=1)
    while left := _naming(tmp_path):
        assert time.monotonic() < deadline, f"cannot end {left}"
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _naming(path: Path) -> list[int]:
    """Live (not zombie) processes other than this one that name `path`."""
    needle, found = str(path).encode(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
        except (OSError, IndexError):
            continue
        if needle in cmd or needle in env:
            found.append(int(entry.name))
    return found


def traced(tmp_path: Path, body: str, days: int, **run_: Any) -> tuple[Path, Path, Path]:
    """Applied: one node over `days` dates running `body` between traced start and end
    lines. (specs, store, trace)"""
    locks = tmp_path / "locks"
    locks.mkdir(exist_ok=True)
    trace = tmp_path / "trace"
    command = TRACED.format(body=body)
    spec_dir = specs(
        tmp_path,
        node(
            "work",
            resourceGroup="rg",
            run={"command": command, "env": {"LOCKS": str(locks), "TRACE": str(trace)}, **run_},
        ),
        backfill(
            select={"method": "descendants", "roots": ["work"]},
            dates=[{"from": "2024-03-01", "to": f"2024-03-{days:02d}"}],
            groups=days,
        ),
    )
    db = tmp_path / "state" / "state.db"
    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    return spec_dir, db, trace


def start(spec_dir: Path, db: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CONTROLLER, str(spec_dir), "--state", str(db), "--interval", "0.1", *extra],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def held(tmp_path: Path) -> tuple[str, Path]:
    """A body that runs until the test creates the file returned (outside the store's
    directory, so a full disk there does not keep it from being created)."""
    go = tmp_path / "go"
    return f"while [ ! -e '{go}' ]; do sleep 0.05; done", go


def reaped(pid: int) -> bool:
    """Gone from /proc: exited, and waited for by its parent (the controller)."""
    return not Path(f"/proc/{pid}").exists()


def lines(trace: Path) -> list[list[str]]:
    return [line.split() for line in trace.read_text().splitlines()] if trace.exists() else []


def attempt_of(marker: str) -> tuple[str, int]:
    """(instance, attempt number) from an attempt's marker, `<runs>/<bf>/<instance>.<n>`."""
    instance, number = Path(marker).name.rsplit(".", 1)
    return instance, int(number)


def test_a_retry_never_starts_beside_an_attempt_that_ignores_term(tmp_path: Path) -> None:
    """Item 1: the timeout's TERM is ignored; the retry waits until the first attempt's
    processes are gone (here: its sleep ends before the KILL that follows the grace)."""
    spec_dir, db, trace = traced(
        tmp_path, "trap '' TERM; sleep 2.5", days=2, timeout="1s", retries=1, retryDelay="0s"
    )
    log = tmp_path / "controller.log"
    proc = start(spec_dir, db, log)
    store = open_store(db)
    try:
        wait_until(lambda: len(store.instances(states=["failed"])) == 2, 60, "both to fail twice")
    finally:
        stop(proc)
    assert [x for x in lines(trace) if x[0] == "overlap"] == []
    assert len(store.attempts()) == 4
    for attempt in store.attempts():
        assert (attempt.message or "").endswith("timed out after 1s")
        assert not alive(int(attempt.handle["pid"]))


def test_a_retry_waits_its_retry_delay(tmp_path: Path) -> None:
    """Item 11: the second attempt starts run.retryDelay after the first one ended."""
    spec_dir, db, trace = traced(tmp_path, "exit 3", days=1, retries=1, retryDelay="2s")
    log = tmp_path / "controller.log"
    proc = start(spec_dir, db, log)
    store = open_store(db)
    try:
        wait_until(lambda: store.instances(states=["waiting-for-time"]), 30, "the wait")
        assert store.instances()[0].reason.startswith("retrying at ")  # type: ignore[union-attr]
        wait_until(lambda: store.instances(states=["failed"]), 30, "the retry to fail")
    finally:
        stop(proc)
    first, second = store.attempts()
    assert first.finished_at is not None
    assert second.started_at - first.finished_at >= 2.0
    assert [x[0] for x in lines(trace)] == ["start", "start"]  # `exit 3` ends it each time


def test_stop_backfill_stops_running_attempts_while_a_controller_runs(tmp_path: Path) -> None:
    """Item 6: a batch of events holding the backfill-level stop still stops each one."""
    spec_dir, db, _ = traced(tmp_path, "sleep 30", days=3)
    log = tmp_path / "controller.log"
    proc = start(spec_dir, db, log)
    store = open_store(db)
    try:
        wait_until(lambda: len(store.attempts(states=["running"])) == 3, 30, "3 attempts")
        assert run("stop", "backfill/bf", "--state-file", str(db), "--as", "ops").exit_code == 0
        wait_until(
            lambda: len(store.instances(states=["failed"])) == 3, 20, "the stop to take effect"
        )
    finally:
        stop(proc)
    assert {i.reason for i in store.instances(states=["failed"])} == {"stopped by ops"}
    assert len(store.attempts()) == 3  # and nothing new started
    assert not [a for a in store.attempts() if alive(int(a.handle["pid"]))]


def test_a_stop_issued_while_no_controller_runs_is_carried_out_at_the_next_start(
    tmp_path: Path,
) -> None:
    """Item 6: operations are state: the next controller carries out the stop."""
    spec_dir, db, trace = traced(tmp_path, "sleep 30", days=1)
    log = tmp_path / "controller.log"
    first = start(spec_dir, db, log)
    store = open_store(db)
    try:
        wait_until(lambda: store.attempts(states=["running"]), 30, "an attempt")
    finally:
        stop(first)
    (attempt,) = store.attempts(states=["running"])
    assert run("stop", attempt.instance, "--state-file", str(db), "--as", "ops").exit_code == 0
    second = start(spec_dir, db, log)
    try:
        wait_until(lambda: store.instances(states=["failed"]), 20, "the stop at the restart")
    finally:
        stop(second)
    assert store.instances()[0].reason == "stopped by ops"
    assert not alive(int(attempt.handle["pid"]))
    assert [x[0] for x in lines(trace)] == ["start"]


def _running(store: RunStore, n: int) -> list[AttemptRecord]:
    """The running attempts, once there are `n` (attempts held by `held` stay running)."""
    found = store.attempts(states=["running"])
    return found if len(found) == n else []


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_a_full_disk_under_the_store_neither_crashes_the_controller_nor_loses_an_outcome(
    tmp_path: Path,
) -> None:
    """Item 3: the store and the runs directory on a small tmpfs that is filled while
    attempts run; the controller says so, keeps what it knows, and carries on when
    room is made. (Needs root to mount; CI runs as root.)"""
    state = tmp_path / "state"
    if not _mount_tmpfs(state, "4m"):
        pytest.skip("mounting a tmpfs is not permitted here (run as root to test a full disk)")
    try:
        body, go = held(tmp_path)
        spec_dir, db, trace = traced(tmp_path, body, days=6)
        log = tmp_path / "controller.log"
        proc = start(spec_dir, db, log)
        store = open_store(db)
        try:
            first = wait_until(lambda: _running(store, 3), 120, "3 attempts running")
            filler = state / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
            go.touch()  # the running attempts end while nothing can be written:
            wait_until(lambda: len([x for x in lines(trace) if x[0] == "end"]) == 3, 120, "ends")
            wait_until(  # the controller took each outcome (it reaped each wrapper) ...
                lambda: all(reaped(int(a.handle["pid"])) for a in first), 120, "the reaping"
            )
            wait_until(  # ... and found the store full
                lambda: "cannot be written" in log.read_text(), 120, "the full disk"
            )
            assert proc.poll() is None, log.read_text()
            filler.unlink()
            wait_until(
                lambda: len(store.instances(states=["succeeded"])) == 6, 120, "all to succeed"
            )
        finally:
            stop(proc)
        assert "cannot be written" in log.read_text()
        assert "internal error" not in log.read_text()
        done = [x for x in lines(trace) if x[0] == "end"]
        assert len(done) == 6 and not [x for x in lines(trace) if x[0] == "overlap"]
        ran = [a for a in store.attempts() if a.state != "lost" or a.exit_code is not None]
        assert sorted(a.instance for a in ran if a.state == "succeeded") == sorted(
            i.id for i in store.instances()
        )  # each ran once; an attempt that never ran is recorded lost, with no exit code
        assert len([a for a in store.attempts() if a.state == "succeeded"]) == 6
        store.close()
        check = sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()
        assert check == ("ok",)
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def test_a_controller_started_on_a_full_disk_waits_for_room(tmp_path: Path) -> None:
    """Item 3: it says what is wrong and waits; it does not exit (or crash)."""
    state = tmp_path / "state"
    if not _mount_tmpfs(state, "4m"):
        pytest.skip("mounting a tmpfs is not permitted here (run as root to test a full disk)")
    try:
        spec_dir, db, trace = traced(tmp_path, "true", days=2)
        filler = state / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        log = tmp_path / "controller.log"
        proc = start(spec_dir, db, log)
        try:
            wait_until(lambda: "waiting for it to be writable" in log.read_text(), 30, "a wait")
            time.sleep(1)
            assert proc.poll() is None, log.read_text()
            filler.unlink()
            store = open_store(db)
            wait_until(lambda: len(store.instances(states=["succeeded"])) == 2, 60, "the run")
        finally:
            stop(proc)
        assert len([x for x in lines(trace) if x[0] == "end"]) == 2
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def test_a_deleted_runs_directory_loses_no_outcome(tmp_path: Path) -> None:
    """Item 3: the status files go with the directory; the controller, the parent of
    each wrapper, still knows every exit code: nothing is "lost", nothing runs again."""
    body, go = held(tmp_path)
    spec_dir, db, _ = traced(tmp_path, body, days=4)
    log = tmp_path / "controller.log"
    proc = start(spec_dir, db, log)
    store = open_store(db)
    try:
        wait_until(lambda: _running(store, 3), 120, "3 attempts running")
        subprocess.run(["rm", "-rf", str(db.parent / "runs")], check=True)
        go.touch()  # the 3 end with their status files gone
        wait_until(lambda: len(store.instances(states=["succeeded"])) == 4, 120, "all")
    finally:
        stop(proc)
    assert len(store.attempts()) == 4
    assert {a.state for a in store.attempts()} == {"succeeded"}


def test_a_controller_paused_past_its_lease_starts_nothing_after_a_takeover(
    tmp_path: Path,
) -> None:
    """Item 4: SIGSTOP past the lease; a second controller takes over; the first, let
    go again, starts nothing and waits for the lease as a standby (issue 14)."""
    spec_dir, db, trace = traced(tmp_path, "sleep 0.5", days=8)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start(spec_dir, db, log_a, "--lease-duration", "1")
    b = None
    store = open_store(db)
    try:
        wait_until(lambda: store.attempts(states=["running"]), 30, "A to start something")
        a.send_signal(signal.SIGSTOP)
        b = start(spec_dir, db, log_b, "--lease-duration", "1")
        wait_until(lambda: "drives" in log_b.read_text(), 30, "B to take over")
        a.send_signal(signal.SIGCONT)
        wait_until(lambda: "back to standby" in log_a.read_text(), 20, "A to step down")
        wait_until(lambda: len(store.instances(states=["succeeded"])) == 8, 60, "B to finish")
        assert a.poll() is None  # waiting for the lease, not gone
    finally:
        a.send_signal(signal.SIGCONT)
        stop(a, b)
    assert "no longer ours" in log_a.read_text() or "lost the lease" in log_a.read_text()
    assert [x for x in lines(trace) if x[0] == "overlap"] == []
    # Exactly once: each instance's command ran once, and the attempts that ran are
    # exactly those the store records as run. An attempt A began (fenced) but was paused
    # before spawning is settled by B's claim of its pid file ("lost", no exit code, only
    # the handle it was begun with: no pid file); the wrapper A spawns when let go finds
    # the claim and runs nothing.
    started = sorted(attempt_of(x[3]) for x in lines(trace) if x[0] == "start")
    assert sorted(i for i, _ in started) == sorted(i.id for i in store.instances())
    unstarted = [a for a in store.attempts() if a.state == "lost" and "base" not in a.handle]
    assert started == sorted((a.instance, a.number) for a in store.attempts() if a not in unstarted)
    for attempt in unstarted:
        assert attempt.exit_code is None
        assert attempt.message == "the controller stopped before it started"


def test_two_controllers_started_at_once_on_a_new_store_both_behave(tmp_path: Path) -> None:
    """Item 4: both open (and migrate) a new store at the same instant."""
    spec_dir = specs(tmp_path, node("a", resourceGroup="rg"), backfill())
    for n in range(8):
        db = tmp_path / f"s{n}" / "state.db"
        procs = [
            subprocess.Popen(
                [*CONTROLLER, str(spec_dir), "--state", str(db), "--once"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        results = [(p.wait(60), p.stderr.read().decode()) for p in procs if p.stderr]
        for code, text in results:
            assert code in (0, 1), text
            assert "internal error" not in text and "already exists" not in text, text
        assert 0 in [code for code, _ in results]


def test_sigterm_while_waiting_for_the_lease_ends_cleanly(tmp_path: Path) -> None:
    """Item 4: exit 0 and a message, not killed by the signal."""
    spec_dir = specs(tmp_path, node("a", resourceGroup="rg", command="sleep 30"), backfill())
    db = tmp_path / "state.db"
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start(spec_dir, db, log_a)
    b = None
    try:
        wait_until(lambda: "drives" in log_a.read_text(), 30, "A")
        b = start(spec_dir, db, log_b)
        wait_until(lambda: "waiting for the lease" in log_b.read_text(), 30, "B to wait")
        b.send_signal(signal.SIGTERM)
        assert b.wait(20) == 0
        assert "stopped while waiting for the lease" in log_b.read_text()
    finally:
        stop(a, b)


def test_with_now_execution_waits_for_what_the_plan_says_waits(tmp_path: Path) -> None:
    """Item 7: `--now T` starts a clock at T; an instance due 3 s later waits 3 s."""
    spec_dir = specs(
        tmp_path, node("a", resourceGroup="rg", command="true"), backfill(dates=["2024-03-01"])
    )
    db = tmp_path / "state.db"
    started = time.monotonic()
    result = run(
        "apply", str(spec_dir), "--state", str(db), "--wait", "--now", "2024-03-02T01:59:57+00:00"
    )
    took = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    assert "notice [waiting-for-time]" in result.stderr
    assert took >= 2.5
    (attempt,) = open_store(db).attempts()
    assert attempt.started_at >= open_store(db).instances()[0].cyctime_epoch


def test_a_relative_state_file_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 10: the store's path is made absolute once; attempts run in the spec root."""
    spec_dir = specs(tmp_path, node("a", resourceGroup="rg", command="true"), backfill())
    monkeypatch.chdir(tmp_path)
    result = run("apply", str(spec_dir.relative_to(tmp_path)), "--state", "st.db", "--wait")
    assert result.exit_code == 0, result.stderr
    assert {a.state for a in open_store(tmp_path / "st.db").attempts()} == {"succeeded"}


def test_ctrl_c_during_apply_wait_exits_130_leaving_the_attempt_to_the_next_controller(
    tmp_path: Path,
) -> None:
    """Ctrl-C is "interrupted" (130), not "a backfill failed" (1): a CI job that waits
    must tell the two apart. The attempt it started goes on, and the next controller
    follows it to its end."""
    spec_dir = specs(
        tmp_path, node("a", resourceGroup="rg", command="sleep 3"), backfill(dates=["2024-03-01"])
    )
    db = tmp_path / "state.db"
    apply = (sys.executable, "-m", "backfill_ctl", "apply", str(spec_dir), "--state", str(db))
    proc = subprocess.Popen(
        [*apply, "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: db.exists() and [a.state for a in open_store(db).attempts()] == ["running"],
            20,
            "the attempt to run",
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        stop(proc)
    assert proc.returncode == 130, stderr
    assert stderr.splitlines()[-2:] == ["backfill/bf: not finished", "interrupted"]
    result = run("apply", str(spec_dir), "--state", str(db), "--wait")
    assert result.exit_code == 0, result.stderr
    assert [(a.number, a.state) for a in open_store(db).attempts()] == [(1, "succeeded")]
