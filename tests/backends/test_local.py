"""The local backend: the backend contract with real processes, and what is its own
(process groups, the TERM-then-KILL grace, the working directory, `$gmtdate`)."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backfill_ctl.backends import (
    BackendContext,
    BackendError,
    NotStarted,
    Outcome,
    make_backend,
)
from backfill_ctl.backends import local as local_module
from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.backends.local.pidfile import read_pid
from tests.backends.contract import BackendContract, Make, run_one, settle, spec


class TestLocalBackend(BackendContract):
    @pytest.fixture
    def make(self, tmp_path: Path) -> Make:
        return lambda: LocalBackend(tmp_path / "runs")


def test_files_of_an_attempt_sit_under_the_backfill(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("sh", "-c", "exit 2"), instance="abc", number=3)
    handle, log = backend.start(s)
    settle(backend, {s.key: handle})
    assert log == str(tmp_path / "runs" / "bf" / "abc.3.log")
    # The command's pid, then its exit code; no other file but the shim's spares (hidden),
    # which go when it ends.
    assert (tmp_path / "runs" / "bf" / "abc.3.pid").read_text() == f"{handle['pid']}\n2\n"
    names = sorted(p.name for p in (tmp_path / "runs" / "bf").iterdir())
    assert [n for n in names if n != ".spares"] == ["abc.3.log", "abc.3.pid"]
    backend.close()
    assert sorted(p.name for p in (tmp_path / "runs" / "bf").iterdir()) == [
        "abc.3.log",
        "abc.3.pid",
    ]


def test_files_left_by_a_store_thrown_away_do_not_count(tmp_path: Path) -> None:
    """Ids are stable: a new store's first attempt has the name of an old one's; each
    store has its own runs directory."""
    s = spec(("echo", "new"))
    old = make_backend("local", BackendContext(tmp_path, store_id="0ld"))
    handle, _ = old.start(spec(("sh", "-c", "echo old; exit 9")))
    settle(old, {s.key: handle})
    outcome, log = run_one(make_backend("local", BackendContext(tmp_path, store_id="new")), s)
    assert (outcome, log) == (Outcome("succeeded", 0), "new\n")
    assert handle["base"] == str(tmp_path / "runs" / "0ld" / "bf" / "i1.1")


def test_a_claim_of_a_newer_controller_is_never_undone_by_a_late_start(tmp_path: Path) -> None:
    """A controller paused between recording an attempt and spawning it; meanwhile the
    next controller's recover declared the attempt unstarted. The late start must not
    run the command (issue 8, item 4)."""
    marker = tmp_path / "ran"
    s = spec(("sh", "-c", f"echo x >> {marker}"))
    late = LocalBackend(tmp_path / "runs")
    newer = LocalBackend(tmp_path / "runs")
    assert newer.recover(s, late.unstarted_handle()) is None  # the newer controller's claim
    handle, _ = late.start(s)
    outcome = settle(late, {s.key: handle})[s.key]
    assert (outcome.state, outcome.started) == ("lost", False)  # its try is given back
    assert not marker.exists()


def test_an_attempt_runs_in_the_spec_root_of_the_backend_that_starts_it(tmp_path: Path) -> None:
    """Not in a directory the instance holds: wherever it was applied from, it runs in the
    checkout of the process that runs it (as it starts: a link followed then)."""
    (tmp_path / "repo").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "repo")
    backend = LocalBackend(tmp_path / "runs", spec_root=str(tmp_path / "link"))
    s = spec(("pwd", "-P"))
    handle, log = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)
    assert backend.log_text(handle, log) == f"{tmp_path / 'repo'}\n"
    assert handle["cwd"] == str(tmp_path / "link")  # (describe says where it ran)


def test_a_relative_working_directory_is_below_the_spec_root(tmp_path: Path) -> None:
    (tmp_path / "repo" / "jobs").mkdir(parents=True)
    backend = LocalBackend(tmp_path / "runs", spec_root=str(tmp_path / "repo"))
    _, log = run_one(backend, spec(("pwd",), working_dir="jobs"))
    assert log == f"{tmp_path / 'repo' / 'jobs'}\n"


def test_a_missing_working_directory_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"working directory .*/gone does not exist"):
        LocalBackend(tmp_path / "runs", spec_root=str(tmp_path / "gone")).start(spec(("true",)))


def test_a_missing_program_fails_with_the_shell_s_code(tmp_path: Path) -> None:
    outcome, log = run_one(LocalBackend(tmp_path / "runs"), spec(("no-such-program-xyz",)))
    assert outcome == Outcome("failed", 127, "exit code 127")
    assert "no-such-program-xyz" in log


def test_gmtdate_is_the_run_date_in_the_node_s_timezone(tmp_path: Path) -> None:
    s = spec(("echo", "$gmtdate"), env={"RUN_DATE": "$gmtdate"})
    _, log = run_one(LocalBackend(tmp_path / "runs"), s)
    assert log == datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d") + "\n"


def test_a_command_ignoring_term_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "GRACE", 0.3)
    backend = LocalBackend(tmp_path / "runs")
    s = spec("trap '' TERM; echo ready; sleep 60 & wait; sleep 60")
    handle, log = backend.start(s)
    deadline = time.monotonic() + 10
    while backend.log_text(handle, log) != "ready\n":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    backend.cancel(s.key, handle, "timed out after 1s")
    outcome = settle(backend, {s.key: handle})[s.key]
    assert (outcome.state, outcome.message) == ("failed", "timed out after 1s")
    assert time.monotonic() - started < 5


def test_an_attempt_recover_declared_unstarted_never_runs(tmp_path: Path) -> None:
    """The controller died between asking for the command and recording the attempt;
    the next one calls recover: one of them must lose."""
    marker = tmp_path / "ran"
    for n in range(20):  # recover right after start: sometimes first, sometimes not
        s = spec(("sh", "-c", f"echo x >> {marker}"), number=n + 1)
        first = LocalBackend(tmp_path / "runs")
        handle, _ = first.start(s)
        found = LocalBackend(tmp_path / "runs").recover(s, first.unstarted_handle())
        ended = settle(first, {s.key: handle})[s.key]
        if found is None:  # declared unstarted: the shim must not run the command
            assert (ended.state, ended.started) == ("lost", False)
        else:  # it had started: it runs to the end, once
            assert ended == Outcome("succeeded", 0)
    runs = marker.read_text().count("x") if marker.exists() else 0
    started = sum(
        1 for p in (tmp_path / "runs" / "bf").glob("i1.*.pid") if p.read_text().endswith("\n0\n")
    )
    assert runs == started


def test_an_attempt_whose_process_vanished_without_a_status_is_lost(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    gone = {"pid": 2**22 + 1, "base": str(tmp_path / "runs" / "bf" / "x.1")}
    assert LocalBackend(tmp_path / "runs").poll({("x", 1): gone}) == {
        ("x", 1): Outcome(
            "lost",
            None,
            "no exit code is known (the shim that started it was killed, or its code could "
            "not be written); "
            "no process of it is left",
        )
    }
    assert backend.log_text(gone, None) == ""


# -- the shim: one process per controller starts the commands and writes their codes ---


def test_a_shim_found_dead_before_a_start_is_replaced(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    assert run_one(backend, spec(("true",)))[0] == Outcome("succeeded", 0)
    dead = backend._starts.shim
    assert dead is not None
    os.kill(dead.pid, signal.SIGKILL)
    _wait_for(lambda: not _is_child_alive({"pid": dead.pid}))
    outcome, _ = run_one(backend, spec(("sh", "-c", "exit 5"), number=2))
    assert outcome == Outcome("failed", 5, "exit code 5")
    assert backend._starts.shim is not dead


def test_a_start_the_shim_never_answers_runs_once_or_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shim had the request but said nothing in time (here: stopped): the attempt is
    settled as a newer controller would, by the claim on its pid file; the shim, let go,
    finds the claim and runs nothing."""
    from backfill_ctl.backends.local import spawner

    monkeypatch.setattr(spawner, "REPLY_TIMEOUT", 0.5)
    backend = LocalBackend(tmp_path / "runs")
    assert run_one(backend, spec(("true",)))[0] == Outcome("succeeded", 0)
    stopped = backend._starts.shim
    assert stopped is not None
    os.kill(stopped.pid, signal.SIGSTOP)
    ran = tmp_path / "ran"
    try:
        s = spec(("touch", str(ran)), number=2)
        handle, _ = backend.start(s)
        outcome = settle(backend, {s.key: handle})[s.key]
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    assert (outcome.state, outcome.started) == ("lost", False)
    _wait_for(lambda: not _is_child_alive({"pid": stopped.pid}))  # it read the request
    assert not ran.exists()
    assert run_one(backend, spec(("true",), number=3))[0] == Outcome("succeeded", 0)


# -- an attempt ends when no process of it is left (issue 8, items 1, 2, 5) -------------


def _marked(base: str) -> list[int]:
    """Live processes of this machine that carry the attempt's marker."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (p / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        if state != "Z" and f"{local_module.MARKER}={base}".encode() in environ.split(b"\0"):
            found.append(int(p.name))
    return found


def _wait_for(what: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not what():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_stopped_command_that_ignores_term_keeps_its_attempt_running_until_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The KILL comes GRACE after the TERM; the polls below end well before it (0.6 s),
    # with room for a loaded machine to pause this process between two of them.
    monkeypatch.setattr(local_module, "GRACE", 4.0)
    backend = LocalBackend(tmp_path / "runs")
    s = spec("trap '' TERM; echo ready; sleep 30")
    handle, log = backend.start(s)
    _wait_for(lambda: backend.log_text(handle, log) == "ready\n")
    backend.cancel(s.key, handle, "stopped by ops")
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:  # the wrapper died on TERM; the command did not
        assert backend.poll({s.key: handle}) == {}
        time.sleep(0.05)
    assert _marked(handle["base"])
    outcome = settle(backend, {s.key: handle})[s.key]
    assert (outcome.state, outcome.message) == ("failed", "stopped by ops")
    assert _marked(handle["base"]) == []  # ended only when nothing of it is left


def test_a_stopped_adopted_attempt_runs_nothing_more_of_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A controller that adopted an attempt signals its processes one by one (a group id
    seen long ago may be someone else's now): found child first, the shell went on to
    the rest of its script before its own signal came. Whatever the order they are
    found in, nothing after the stop runs."""
    from backfill_ctl.backends.local import groups, procs

    real = procs.group_members

    class Found(list[int]):  # a set of pids that comes in the order given
        def __sub__(self, other: Iterable[int]) -> Found:
            gone = set(other)
            return Found(p for p in self if p not in gone)

        def __or__(self, other: Iterable[int]) -> set[int]:
            return set(self) | set(other)

        __ror__ = __or__

    def children_first(pgid: int, base: str | None) -> Found:  # the worst order
        return Found(sorted(real(pgid, base), reverse=True))

    monkeypatch.setattr(procs, "group_members", children_first)
    monkeypatch.setattr(groups, "group_members", children_first)
    trace = tmp_path / "trace"
    s = spec(f"echo start >> '{trace}'; sleep 30; echo end >> '{trace}'; echo after >> '{trace}'")
    handle, _ = LocalBackend(tmp_path / "runs").start(s)
    _wait_for(lambda: trace.exists() and len(_marked(handle["base"])) == 2)  # sh, sleep
    adopted = LocalBackend(tmp_path / "runs")  # the next controller's

    adopted.cancel(s.key, handle, "stopped by ops")

    outcome = settle(adopted, {s.key: handle})[s.key]
    time.sleep(0.2)  # what a surviving shell would write, it would have by now
    assert (outcome.state, outcome.message) == ("failed", "stopped by ops")
    assert trace.read_text() == "start\n"
    assert _marked(handle["base"]) == []


@pytest.mark.parametrize("adopted", [False, True])
def test_a_killed_shim_is_not_a_finished_attempt(tmp_path: Path, adopted: bool) -> None:
    """The shim that started the command (and would have written its code) is killed:
    the attempt runs as long as its command does, and then ends without a known code,
    for the controller that started it and for the next one alike."""
    backend = LocalBackend(tmp_path / "runs")
    go = tmp_path / "go"  # the command runs until it exists, however slow the machine
    s = spec(f"echo ready; while [ ! -e '{go}' ]; do sleep 0.02; done; echo done")
    handle, log = backend.start(s)
    _wait_for(lambda: backend.log_text(handle, log) == "ready\n")
    shim = backend._starts.shim
    assert shim is not None
    os.kill(shim.pid, signal.SIGKILL)
    follower = LocalBackend(tmp_path / "runs") if adopted else backend
    _wait_for(lambda: backend.poll({s.key: handle}) == {} and shim.gone)
    assert follower.poll({s.key: handle}) == {}  # its command still runs
    assert _is_child_alive(handle)
    go.touch()
    outcome = settle(follower, {s.key: handle})[s.key]
    assert backend.log_text(handle, log) == "ready\ndone\n"  # ended after the command did
    assert outcome.state == "lost" and outcome.exit_code is None
    assert _marked(handle["base"]) == []


def _is_child_alive(handle: dict[str, object]) -> bool:
    try:
        state = Path(f"/proc/{handle['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_processes_a_command_leaves_behind_end_with_its_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "GRACE", 0.5)
    backend = LocalBackend(tmp_path / "runs")
    s = spec("sleep 30 & (trap '' TERM; sleep 30) & echo left")
    handle, log = backend.start(s)
    outcome = settle(backend, {s.key: handle})[s.key]
    assert outcome == Outcome("succeeded", 0, "ended 2 process(es) it left running")
    assert backend.log_text(handle, log) == "left\n"
    assert _marked(handle["base"]) == []


_ESCAPE = """
import sys
from pathlib import Path
from backfill_ctl.backends import local
from backfill_ctl.backends.local import LocalBackend
from tests.backends.contract import settle, spec

local.GRACE = 0.5
backend = LocalBackend(Path(sys.argv[1]), supervise=True)
s = spec(
    "setsid sh -c 'trap \\"\\" TERM; echo $$ > %s; exec sleep 30' & "
    "until [ -s %s ]; do sleep 0.01; done" % (sys.argv[2], sys.argv[2]))
handle, log = backend.start(s)
print(handle["base"], settle(backend, {s.key: handle})[s.key].state, flush=True)
"""


def test_a_process_that_leaves_the_session_ends_with_its_attempt(
    tmp_path: Path,
) -> None:
    """The controller is the subreaper of what its attempts leave: a `setsid` daemon
    becomes its child and is known by its marker (run in a process of its own)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", _ESCAPE, str(tmp_path / "runs"), str(tmp_path / "escaped.pid")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    base, state = done.stdout.split()
    assert state == "succeeded"
    assert _marked(base) == []
    assert not _is_child_alive({"pid": int((tmp_path / "escaped.pid").read_text())})


_SHIM_KILLED = """
import os, signal, sys, time
from pathlib import Path
from backfill_ctl.backends.local import LocalBackend
from tests.backends.contract import settle, spec

go = Path(sys.argv[2])
backend = LocalBackend(Path(sys.argv[1]), supervise=True)
s = spec("echo ready; while [ ! -e '%s' ]; do sleep 0.02; done; exit 3" % go)
handle, log = backend.start(s)
while backend.log_text(handle, log) != "ready\\n":
    time.sleep(0.01)
os.kill(backend._starts.shim.pid, signal.SIGKILL)
assert backend.poll({s.key: handle}) == {}
go.touch()
outcome = settle(backend, {s.key: handle})[s.key]
print(outcome.state, outcome.exit_code, flush=True)
"""


def test_a_killed_shim_loses_no_code_while_its_controller_runs(tmp_path: Path) -> None:
    """The controller is the subreaper of what its attempts leave: the commands of a shim
    that was killed become its children, and it reaps their exit codes itself."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    go = tmp_path / "go"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SHIM_KILLED, str(tmp_path / "runs"), str(go)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
    finally:
        go.touch()  # (the command ends, whatever became of the script)
    assert done.stdout.split() == ["failed", "3"]


# -- files as private as the store, whatever the umask (issue 9, item 6) -----------------


def test_the_attempt_s_files_are_private_and_the_command_keeps_its_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        backend = make_backend("local", BackendContext(tmp_path, store_id="s1"))
        s = spec(f"touch {tmp_path / 'made'}")
        handle, _ = backend.start(s)
        settle(backend, {s.key: handle})
    finally:
        os.umask(old)
    base = tmp_path / "runs" / "s1" / "bf" / "i1.1"
    for d in (tmp_path / "runs", tmp_path / "runs" / "s1", base.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for suffix in (".log", ".pid"):
        f = base.with_suffix(base.suffix + suffix)
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE((tmp_path / "made").stat().st_mode) == 0o666  # its own umask


@pytest.mark.parametrize("plant", ["symlink", "foreign"])
@pytest.mark.parametrize("suffix", [".pid", ".status"])
def test_a_planted_exit_code_is_not_believed(tmp_path: Path, plant: str, suffix: str) -> None:
    """An adopted attempt whose pid file was replaced, while it ran, by a symlink or
    another user's file saying it succeeded (or with a status file, as versions before
    the code shared the pid file wrote, planted beside): its exit code is not taken from
    it, and the shim does not write through it."""
    backend = LocalBackend(tmp_path / "runs")
    s = spec("sleep 0.5; exit 3")
    handle, _ = backend.start(s)
    backend.poll({})  # the shim's answer taken: the handle has its pid
    base = Path(handle["base"])
    deadline = time.monotonic() + 10
    while read_pid(base) is None and time.monotonic() < deadline:  # its pid is written
        time.sleep(0.01)
    planted = base.with_suffix(base.suffix + suffix)
    planted.unlink(missing_ok=True)
    target = tmp_path / "elsewhere"
    if plant == "symlink":
        target.write_text(f"{handle['pid']}\n0\n")
        planted.symlink_to(target)
    else:
        planted.write_text(f"{handle['pid']}\n0\n" if suffix == ".pid" else "0\n")
        os.chown(planted, 65534, 65534)
    outcome = settle(backend, {s.key: handle})[s.key]
    assert outcome.exit_code == 3  # the shim's word, not the planted file
    adopted = LocalBackend(tmp_path / "runs").poll({s.key: handle})[s.key]
    if suffix == ".pid":
        assert (adopted.state, adopted.exit_code) == ("lost", None)  # not "succeeded"
    else:  # the pid file the shim wrote says it
        assert (adopted.state, adopted.exit_code) == ("failed", 3)
    if plant == "symlink":
        assert target.read_text() == f"{handle['pid']}\n0\n"  # untouched


def test_a_runs_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "bf").mkdir(parents=True)
    os.chown(runs / "bf", 65534, 65534)
    with pytest.raises(BackendError, match=r"belongs to uid 65534, not to this user"):
        LocalBackend(runs).start(spec(("true",)))


@pytest.mark.parametrize("plant", ["symlink", "foreign"])
def test_a_runs_directory_planted_above_the_store_s_is_refused_and_nothing_runs(
    tmp_path: Path, plant: str
) -> None:
    """`<state dir>/runs` itself, not only the store's directory inside it: a symlink
    there would take every attempt's log and pid file elsewhere. The check says so,
    nothing is written through it, and the attempt is not started (NotStarted: no try is
    counted, it may start once the directory is fixed); recover claims nothing there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runs = tmp_path / "runs"
    if plant == "symlink":
        runs.symlink_to(elsewhere)
        why = "is a symlink, not a directory: refusing to use it; remove it"
    else:
        runs.mkdir()
        os.chown(runs, 65534, 65534)
        why = "belongs to uid 65534, not to this user: refusing to use it; move it away"
    why = f"{re.escape(str(runs))} {why}"
    ran = tmp_path / "ran"
    s = spec(("touch", str(ran)))
    backend = make_backend("local", BackendContext(tmp_path, store_id="5t0re"))
    try:
        assert backend.check()[-1][:2] == ("write logs", False)
        assert re.match(why, backend.check()[-1][2])
        with pytest.raises(NotStarted, match=why) as caught:
            backend.start(s)
        assert caught.value.state == "pending"
        with pytest.raises(BackendError, match=why):
            backend.recover(s, backend.unstarted_handle())
    finally:
        backend.close()
    assert list(runs.iterdir()) == []  # (the symlink's target, or the other user's)
    assert not ran.exists()


def test_a_wrapper_stalled_before_writing_its_pid_is_found_by_its_marker(tmp_path: Path) -> None:
    """The wrapper created its pid file (so the attempt started) but had not written its
    pid when the next controller's recover gave up waiting: the attempt's processes,
    marked with its base, keep it running; it ends only when they are gone."""
    s = spec(("true",))
    base = tmp_path / "runs" / "bf" / "i1.1"
    base.parent.mkdir(parents=True)
    (base.parent / "i1.1.pid").touch(mode=0o600)  # created, never written
    stalled = subprocess.Popen(
        ["sleep", "60"],
        env={**os.environ, "BACKFILLCTL_ATTEMPT": str(base)},
        start_new_session=True,
    )
    try:
        backend = LocalBackend(tmp_path / "runs")
        handle = backend.recover(s, backend.unstarted_handle())
        assert handle == {"pid": stalled.pid, "base": str(base), "place": backend.places.key}
        assert backend.poll({s.key: handle}) == {}  # it runs
        stalled.kill()
        stalled.wait()
        outcome = settle(backend, {s.key: handle})[s.key]
        assert outcome.state == "lost"
    finally:
        if stalled.poll() is None:
            stalled.kill()
            stalled.wait()


def test_an_attempt_left_by_an_earlier_wrapper_is_settled_from_its_status_file(
    tmp_path: Path,
) -> None:
    """Before the exit code shared the pid file, the wrapper wrote it to `<base>.status`:
    a controller upgraded while such an attempt ran still reads its outcome there."""
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("true",))
    done = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    gone = int(done.stdout)  # a pid no process has now
    base = tmp_path / "runs" / "bf" / "i1.1"
    base.parent.mkdir(parents=True)
    Path(f"{base}.pid").write_text(f"{gone}\n")
    Path(f"{base}.status").write_text("4\n")
    ended = backend.poll({s.key: {"pid": gone, "base": str(base)}})[s.key]
    assert (ended.state, ended.exit_code) == ("failed", 4)


# The /bin/sh wrapper each attempt ran under before the shim (as it was, word for word).
_EARLIER_WRAPPER = (
    "umask 077; set -C\n"
    "{\n"
    "echo $$ >&3 || exit 125\n"
    'set +C; umask "$1"\n'
    'if [ -z "$2" ] || cd -P -- "$2" 2>&4; then shift 2; "$@" 2>&4 3>&- 4>&-; rc=$?; '
    "else rc=126; fi\n"
    "echo $rc >&3\n"
    "exit $rc\n"
    '} 4>&2 2>/dev/null 3>"$0.pid" || exit 125\n'
)


def test_an_attempt_running_under_an_earlier_version_s_wrapper_is_followed(
    tmp_path: Path,
) -> None:
    """backfillctl upgraded while an attempt runs under the wrapper of the version before
    the shim: the new controller follows it by its wrapper's pid (the handle it stored),
    sees it running until its command ends, and takes the code the wrapper wrote."""
    base = tmp_path / "runs" / "bf" / "i1.1"
    base.parent.mkdir(parents=True, mode=0o700)
    go = tmp_path / "go"
    command = f"while [ ! -e '{go}' ]; do sleep 0.02; done; exit 6"
    arguments = [_EARLIER_WRAPPER, str(base), "077", "", "sh", "-c", command]  # as it had
    with open(f"{base}.log", "w") as log:  # noqa: PTH123
        wrapper = subprocess.Popen(  # its parent exits at once: init is the reaper
            ["sh", "-c", 'setsid /bin/sh -c "$@" &', "x", *arguments],
            stdout=log,
            stderr=log,
            env={**os.environ, "BACKFILLCTL_ATTEMPT": str(base)},
        )
        wrapper.wait()
    _wait_for(lambda: read_pid(base) is not None)
    handle = {"pid": read_pid(base), "base": str(base)}
    s = spec(("true",))
    upgraded = LocalBackend(tmp_path / "runs")
    try:
        assert upgraded.poll({s.key: handle}) == {}  # its command runs
        time.sleep(0.1)
        assert upgraded.poll({s.key: handle}) == {}
    finally:
        go.touch()
    assert settle(upgraded, {s.key: handle})[s.key] == Outcome("failed", 6, "exit code 6")
    assert _marked(str(base)) == []


_NO_REAPER = """
import os, sys, time
pid = os.fork()
if pid == 0:
    os._exit(3)
print(pid, flush=True)
time.sleep(60)  # never reaps it: as an init that does not reap orphans
"""


def test_a_zombie_whose_code_nobody_will_write_is_not_running(tmp_path: Path) -> None:
    """The attempt's process is a zombie of a process that is not a shim (here: one that
    never reaps, as some containers' init): nobody will write its code, so it is not
    taken as still running (the attempt would never end), and ends without a code."""
    from backfill_ctl.backends.local.procs import alive, proc_stat

    parent = subprocess.Popen([sys.executable, "-c", _NO_REAPER], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        zombie = int(parent.stdout.readline())
        _wait_for(lambda: (proc_stat(zombie) or ["?"])[0] == "Z")
        base = str(tmp_path / "runs" / "bf" / "i1.1")
        assert not alive(zombie, base)
        ended = LocalBackend(tmp_path / "runs").poll({("i1", 1): {"pid": zombie, "base": base}})
        assert ended[("i1", 1)].state == "lost"
    finally:
        parent.kill()
        parent.wait()


def test_a_command_its_shim_has_not_reaped_yet_is_still_running(tmp_path: Path) -> None:
    """The command ended, and its shim (here: stopped) has not written its code yet: a
    controller that follows the attempt waits for the code rather than call it lost."""
    from backfill_ctl.backends.local.procs import proc_stat

    backend = LocalBackend(tmp_path / "runs")
    go = tmp_path / "go"
    s = spec(f"while [ ! -e '{go}' ]; do sleep 0.02; done; exit 4")
    handle, _ = backend.start(s)
    backend.poll({})  # the shim's answer taken: the handle has its pid
    shim = backend._starts.shim
    assert shim is not None
    os.kill(shim.pid, signal.SIGSTOP)
    try:
        go.touch()
        _wait_for(lambda: (proc_stat(handle["pid"]) or ["?"])[0] == "Z")
        follower = LocalBackend(tmp_path / "runs")  # the next controller's
        assert follower.poll({s.key: handle}) == {}
    finally:
        os.kill(shim.pid, signal.SIGCONT)
    assert settle(follower, {s.key: handle})[s.key] == Outcome("failed", 4, "exit code 4")
