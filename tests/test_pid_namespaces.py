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
import time
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.backends.local.pidfile import read_status
from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.test_faults import (  # noqa: F401 (a fixture: what a test leaves running is ended)
    TRACED,
    _nothing_left_running,
    held,
    lines,
)
from tests.test_reliability import controller as any_controller
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
    prefix = UNSHARE if namespace else ()
    return any_controller(spec_dir, db, log, "--lease-duration", str(LEASE), prefix=prefix)


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


def kill_place(reader_db: Path | str) -> None:
    """A's place dies with its shim: the shim first (so that no code is written), then
    every process of the attempts it started (from here, where they can be seen)."""
    reader = open_store(reader_db)
    try:
        pids = [int(x.handle["pid"]) for x in reader.attempts(states=["running"])]
    finally:
        reader.close()
    shims = {
        int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in pids
    }
    for shim in shims:
        os.kill(shim, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def force(db: Path | str, instance: str, actor: str = "ops") -> Any:
    return run("stop", instance, "--force", "--state-file", str(db), "--as", actor)


def test_stop_force_ends_an_attempt_whose_place_died_with_its_shim(
    tmp_path: Path, store: Path | str
) -> None:
    """A's place is gone with its shim: B would follow both attempts for ever. `stop
    --force` by an operator ends one: B records it lost (who ended it, in its events), its
    instance failed and not retried; the other one goes on running. Once the instance is
    rerun, B starts its attempt where B can see it: `stop --force` is refused (exit 1,
    use stop), and a plain stop ends it."""
    a, b, log_b, trace, _ = taken_over(tmp_path, store)
    reader = open_store(store)
    try:
        kill_place(store)
        first, second = (x.instance for x in reader.attempts())
        time.sleep(1.0)  # B goes on following them: nothing tells it they ended
        assert {x.state for x in reader.attempts()} == {"running"}
        denied = force(store, first, actor="mallory")
        assert denied.exit_code == 1, denied.stderr
        assert "mallory may not operate node work" in denied.stderr
        forced = force(store, first)
        assert (forced.exit_code, forced.stderr) == (0, "")
        assert forced.stdout == f"instance/{first} stop requested (--force)\n"
        wait_until(
            lambda: reader.instances(ids=[first])[0].state == "failed",
            30,
            "B to record it",
            log_b.read_text,
        )
        (ended,) = reader.attempts(first)
        assert (ended.state, ended.exit_code) == ("lost", None)
        assert "stop --force by ops" in (ended.message or "")
        asked = [e for e in reader.events(instance=first) if e.kind == "force-stop"]
        assert [(e.actor, e.from_state, e.to_state) for e in asked] == [
            ("ops", "running", "running")
        ]
        time.sleep(1.0)
        assert reader.instances(ids=[second])[0].state == "running"  # not forced: running
        assert kinds(trace) == ["start", "start"]  # and nothing started again
        # Rerun: B starts attempt 2 in its own pid namespace, where it sees it.
        assert run("rerun", first, "--state-file", str(store), "--as", "ops").exit_code == 0
        wait_until(lambda: kinds(trace).count("start") == 3, 30, "B to start it", log_b.read_text)
        refused = force(store, first)
        assert refused.exit_code == 1, refused.stdout
        assert f"instance/{first}: cannot stop --force: " in refused.stderr
        assert "stop it without --force" in refused.stderr
        assert reader.instances(ids=[first])[0].stop_requested is False
        stopped = run("stop", first, "--state-file", str(store), "--as", "ops")
        assert stopped.exit_code == 0, stopped.stderr
        wait_until(
            lambda: reader.instances(ids=[first])[0].state == "failed",
            30,
            "the stop",
            log_b.read_text,
        )
        assert force(store, second).exit_code == 0
        wait_until(lambda: reader.instances(ids=[second])[0].state == "failed", 30, "the second")
    finally:
        stop(a, b)
    assert "overlap" not in kinds(trace)
    ran = sorted((x.instance == first, x.number, x.state) for x in reader.attempts())
    assert ran == [(False, 1, "lost"), (True, 1, "lost"), (True, 2, "failed")]


def pause(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    os.kill(inner(proc), sig)


def test_a_code_its_shim_wrote_before_stop_force_was_carried_out_wins(
    tmp_path: Path, store: Path | str
) -> None:
    """The race, one way: the operator's `stop --force` is stored while B is paused, and
    the commands end meanwhile (their shim lives: it writes their codes). When B carries
    the stop out, the code that came first is what is recorded: succeeded, exit 0, once."""
    a, b, log_b, trace, go = taken_over(tmp_path, store)
    reader = open_store(store)
    try:
        first = reader.attempts()[0].instance
        bases = [str(x.handle["base"]) for x in reader.attempts()]
        pause(b, signal.SIGSTOP)
        try:
            assert force(store, first).exit_code == 0
            go.touch()
            wait_until(
                lambda: all(read_status(x) == 0 for x in bases), 30, "the shim to write the codes"
            )
        finally:
            pause(b, signal.SIGCONT)
        wait_until(
            lambda: len(reader.instances(states=["succeeded"])) == 2,
            60,
            "both to be recorded",
            log_b.read_text,
        )
        time.sleep(0.5)
    finally:
        stop(a, b)
    assert [(x.number, x.state, x.exit_code) for x in reader.attempts()] == [
        (1, "succeeded", 0)
    ] * 2
    assert sorted(kinds(trace)) == ["end", "end", "start", "start"]
    ends = [
        e
        for e in reader.events(instance=first)
        if e.from_state == "running" and e.to_state != "running"
    ]
    assert [e.to_state for e in ends] == ["succeeded"]


def test_a_code_its_shim_writes_after_stop_force_changes_nothing(
    tmp_path: Path, store: Path | str
) -> None:
    """The race, the other way: B records the attempt lost at the operator's word (here,
    wrongly: its command still runs), then its shim writes its real code. The attempt
    stays lost and its instance failed: one end recorded, nothing started again."""
    a, b, log_b, trace, go = taken_over(tmp_path, store)
    reader = open_store(store)
    try:
        first = reader.attempts()[0].instance
        base = str(reader.attempts(first)[0].handle["base"])
        assert force(store, first).exit_code == 0
        wait_until(
            lambda: reader.instances(ids=[first])[0].state == "failed",
            30,
            "B to record it",
            log_b.read_text,
        )
        go.touch()
        wait_until(lambda: read_status(base) == 0, 30, "the shim to write its code")
        wait_until(lambda: len(reader.instances(states=["succeeded"])) == 1, 30, "the other one")
        time.sleep(1.0)
    finally:
        stop(a, b)
    assert reader.instances(ids=[first])[0].state == "failed"
    (ended,) = reader.attempts(first)
    assert (ended.state, ended.exit_code) == ("lost", None)
    ends = [
        e
        for e in reader.events(instance=first)
        if e.from_state == "running" and e.to_state != "running"
    ]
    assert [e.to_state for e in ends] == ["failed"]
    assert kinds(trace).count("start") == 2
