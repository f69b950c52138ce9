"""A takeover across pid namespaces of one machine, on one shared store, with the local
backend and real processes: controller A here, standby B in a pid namespace of its own
(`unshare --pid --fork --mount-proc`, as root; a store in a directory both see, SQLite,
or PostgreSQL under BACKFILLCTL_PG=1). A is killed with -9: its shim and the attempts
it started live on. B cannot see nor signal their processes (its /proc is its own
namespace's); it must not take their absence there for their end.

What ran is proved from a trace (tests/test_faults.py's `TRACED`): each command takes a
per-instance lock (`flock -n`) that the kernel holds while any process of the attempt
lives, so an attempt started beside an earlier one of its instance writes `overlap`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.test_faults import (  # noqa: F401 (a fixture: what a test leaves running is ended)
    TRACED,
    _nothing_left_running,
    held,
    lines,
)
from tests.test_reliability import specs, wait_until

pytestmark = pytest.mark.usefixtures("_nothing_left_running")

UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc")
LEASE = 2.0  # seconds: --lease-duration of the controllers here


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A SQLite file in a directory both namespaces see, or a new database of the
    PostgreSQL tier's server (skipped without BACKFILLCTL_PG=1); either way both
    controllers share the runs directory (beside the file, or .backfillctl/ of
    tmp_path, where both run)."""
    done = subprocess.run([*UNSHARE, "true"], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"no new pid namespace here (run as root): {done.stderr.decode().strip()}")
    if request.param == "sqlite":
        return tmp_path / "state" / "state.db"
    return str(request.getfixturevalue("pg_url"))


def traced(tmp_path: Path, db: Path | str, body: str, days: int, **run_: Any) -> tuple[Path, Path]:
    """Applied to `db`: one node over `days` dates running `body` between traced start
    and end lines. (specs, trace)"""
    (tmp_path / "locks").mkdir()
    trace = tmp_path / "trace"
    env = {"LOCKS": str(tmp_path / "locks"), "TRACE": str(trace)}
    spec_dir = specs(
        tmp_path,
        node(
            "work",
            resourceGroup="rg",
            run={"command": TRACED.format(body=body), "env": env, **run_},
        ),
        backfill(
            select={"method": "descendants", "roots": ["work"]},
            dates=[{"from": "2024-03-01", "to": f"2024-03-{days:02d}"}],
            groups=days,
        ),
    )
    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    return spec_dir, trace


def controller(
    spec_dir: Path, db: Path | str, log: Path, *, namespace: bool = False
) -> subprocess.Popen[bytes]:
    """`backfillctl controller` in `log`'s directory; with `namespace`, as the first
    process of a new pid namespace (then `inner` is its pid here)."""
    argv = [
        *(UNSHARE if namespace else ()),
        sys.executable,
        "-m",
        "backfill_ctl",
        "controller",
        str(spec_dir),
        "--state",
        str(db),
        "--interval",
        "0.1",
        "--lease-duration",
        str(LEASE),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("ab"), cwd=log.parent)


def inner(proc: subprocess.Popen[bytes]) -> int:
    """The controller `unshare` started (unshare ignores SIGTERM: it is signalled)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    found = wait_until(lambda: children.read_text().split(), 30, "unshare's child")
    return int(found[0])


def stop(a: subprocess.Popen[bytes], b: subprocess.Popen[bytes] | None) -> None:
    if a.poll() is None:
        a.kill()
        a.wait()
    if b is not None and b.poll() is None:
        with contextlib.suppress(ProcessLookupError, AssertionError):
            os.kill(inner(b), signal.SIGTERM)
        try:
            b.wait(20)
        except subprocess.TimeoutExpired:
            b.kill()
            b.wait()


def kinds(trace: Path) -> list[str]:
    return [x[0] for x in lines(trace)]


def taken_over(
    tmp_path: Path, db: Path | str, then: str = "true"
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Path, Path, Path]:
    """A drove the store and started two attempts (2 retries each) that run until `go`
    exists (returned last), then `then`; A was killed (-9); B, in a pid namespace of its
    own, adopted both. (A, B, B's log, the trace, go)"""
    body, go = held(tmp_path)
    spec_dir, trace = traced(tmp_path, db, f"{body}; {then}", days=2, retries=2, retryDelay="0s")
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = controller(spec_dir, db, log_a)
    reader = open_store(db)
    try:
        wait_until(lambda: len(reader.attempts(states=["running"])) == 2, 60, "A's two attempts")
        b = controller(spec_dir, db, log_b, namespace=True)
        wait_until(lambda: "waiting for the lease" in log_b.read_text(), 60, "B to wait")
        a.kill()
        a.wait()
        wait_until(
            lambda: log_b.read_text().count("adopted attempt") == 2,
            60,
            "B to adopt both",
            lambda: log_b.read_text(),
        )
    finally:
        reader.close()
    return a, b, log_b, trace, go


def test_a_standby_in_another_pid_namespace_leaves_the_attempts_running_till_they_end(
    tmp_path: Path, store: Path | str
) -> None:
    """The audit's repro: B used to find no process of A's attempts in its /proc, record
    them lost and start them again beside themselves. Now it says where they run, follows
    them by their pid files (their shim outlives A), starts nothing, and records each one
    as it ends."""
    a, b, log_b, trace, go = taken_over(tmp_path, store)
    reader = open_store(store)
    try:
        time.sleep(2.0)  # B follows them for a while: a poll every 0.1 to 0.5 s
        assert kinds(trace) == ["start", "start"], log_b.read_text()  # nothing again
        assert {(x.number, x.state) for x in reader.attempts()} == {(1, "running")}
        go.touch()
        wait_until(
            lambda: len(reader.instances(states=["succeeded"])) == 2,
            60,
            "their ends to be recorded",
            lambda: log_b.read_text(),
        )
    finally:
        stop(a, b)
    assert sorted(kinds(trace)) == ["end", "end", "start", "start"]  # no overlap either
    attempts = reader.attempts()
    assert [(x.number, x.state, x.exit_code) for x in attempts] == [(1, "succeeded", 0)] * 2
    said = log_b.read_text()
    assert said.count("in another pid namespace of this machine") == 2, said  # once each
    assert "where this controller can neither see nor signal its processes" in said
    assert "lost" not in said


def test_a_stop_of_an_attempt_in_another_pid_namespace_says_it_cannot_signal_it(
    tmp_path: Path, store: Path | str
) -> None:
    """B cannot signal the attempt: it says so, with how to end it there, and does not
    pretend it stopped. The attempt runs on until it ends (failing, with 2 retries left);
    its end is recorded, and its instance is not retried: an operator asked to stop it.
    The other instance's retries start only once its first attempt ended."""
    a, b, log_b, trace, go = taken_over(tmp_path, store, then="exit 3")
    reader = open_store(store)
    try:
        first = reader.attempts()[0].instance
        stopped = run("stop", first, "--state-file", str(store), "--as", "ops")
        assert stopped.exit_code == 0, stopped.stderr
        wait_until(lambda: "cannot stop attempt 1" in log_b.read_text(), 30, "B to say so")
        time.sleep(1.0)
        assert reader.instances(ids=[first])[0].state == "running"
        go.touch()
        wait_until(
            lambda: len(reader.instances(states=["failed"])) == 2,
            60,
            "both to fail",
            log_b.read_text,
        )
    finally:
        stop(a, b)
    assert "overlap" not in kinds(trace)
    ran = [(x.instance == first, x.number, x.state, x.exit_code) for x in reader.attempts()]
    assert sorted(ran) == [
        (False, 1, "failed", 3),
        (False, 2, "failed", 3),
        (False, 3, "failed", 3),
        (True, 1, "failed", 3),
    ]
    said = log_b.read_text()
    assert f"cannot stop attempt 1 of {first} (stopped by ops): it runs in" in said
    assert "kill -TERM -- -" in said
