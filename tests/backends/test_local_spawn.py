"""How the local backend starts its wrapper (posix_spawn): what the command inherits from
the controller (descriptors, signal dispositions), and its working directory, which the
wrapper enters itself."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from backfill_ctl.backends import Outcome
from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.backends.local.attempt import NOT_RUN
from backfill_ctl.backends.local.pidfile import inherited_fds, read_status
from backfill_ctl.backends.local.shim import DIRECTORIES, NO_CWD, SPARES
from tests.backends.contract import run_one, settle, spec


def test_no_descriptor_of_the_controller_reaches_the_command(tmp_path: Path) -> None:
    """As with subprocess's close_fds: even one the controller could pass on (from its own
    parent, or a C library's without close-on-exec) is closed for the attempt."""
    fd = os.open(tmp_path / "held", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.set_inheritable(fd, True)
        assert fd in inherited_fds()
        _, log = run_one(LocalBackend(tmp_path / "runs"), spec(("ls", "/proc/self/fd")))
    finally:
        os.close(fd)
    assert sorted(int(n) for n in log.split()) == [0, 1, 2, 3]  # (3: ls's own listing)


def test_the_command_gets_the_default_sigpipe_python_ignores(tmp_path: Path) -> None:
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # Python's, in this process
    _, log = run_one(
        LocalBackend(tmp_path / "runs"), spec(("sh", "-c", "grep SigIgn /proc/self/status"))
    )
    ignored = int(log.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def test_a_relative_runs_root_keeps_the_files_there_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path)
    backend = LocalBackend(Path("runs"), spec_root="repo")
    s = spec(("sh", "-c", "pwd; exit 4"))
    handle, log = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("failed", 4, "exit code 4")
    assert Path(log).read_text() == f"{tmp_path / 'repo'}\n"
    assert read_status(tmp_path / "runs" / "bf" / "i1.1") == 4
    assert not (tmp_path / "repo" / "runs").exists()


def test_a_working_directory_gone_after_the_check_fails_the_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It vanished between the backend's check and the wrapper's `cd`: the command did
    not run, and the attempt fails (a try used, as a command that cannot run), with its
    status recorded; it is not "unstarted", which would retry it for ever."""
    gone = str(tmp_path / "gone")
    real = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: str(p) == gone or real(p))
    backend = LocalBackend(tmp_path / "runs", spec_root=gone)
    outcome, log = run_one(backend, spec(("true",)))
    assert outcome == Outcome("failed", NO_CWD, f"exit code {NO_CWD}")
    assert "gone" in log
    assert read_status(tmp_path / "runs" / "bf" / "i1.1") == NO_CWD


def test_a_program_is_found_on_the_attempt_s_own_path(tmp_path: Path) -> None:
    """As a shell would find it: on the PATH of the command's environment (its node's
    `run.env`), not the controller's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "only-here"
    program.write_text("#!/bin/sh\necho found $1\n")
    program.chmod(0o755)
    s = spec(("only-here", "it"), env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    outcome, log = run_one(LocalBackend(tmp_path / "runs"), s)
    assert (outcome.state, log) == ("succeeded", "found it\n")


def test_each_command_gets_the_controller_s_environment_as_it_is_at_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shim is sent the controller's environment only when it changed since the last
    start: a variable set, changed or removed in between still reaches the next command
    (or is gone from it) exactly, and the attempt's own variables win over it."""
    backend = LocalBackend(tmp_path / "runs")
    show = ("sh", "-c", 'echo "${BFC_A-unset} ${BFC_B-unset} ${BFC_OWN-unset}"')
    steps: list[tuple[dict[str, str | None], dict[str, str], str]] = [
        ({"BFC_A": "1", "BFC_B": None}, {}, "1 unset unset"),
        ({}, {}, "1 unset unset"),  # the same environment: sent as "-"
        ({"BFC_A": "2", "BFC_B": "b"}, {"BFC_OWN": "own"}, "2 b own"),
        ({"BFC_A": None}, {"BFC_B": "mine"}, "unset mine unset"),
        ({}, {}, "unset b unset"),
    ]
    for number, (changes, own, expected) in enumerate(steps, start=1):
        for name, value in changes.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        outcome, log = run_one(backend, spec(show, number=number, env=own))
        assert (outcome.state, log) == ("succeeded", f"{expected}\n"), number
    shims = backend._starts.shims()
    assert len(shims) == 1  # (one shim heard every request)


def test_a_program_that_cannot_be_executed_fails_with_126(tmp_path: Path) -> None:
    program = tmp_path / "not-executable"
    program.write_text("echo never\n")
    outcome, log = run_one(LocalBackend(tmp_path / "runs"), spec((str(program),)))
    assert outcome == Outcome("failed", 126, "exit code 126")
    assert "never" not in log and "Permission denied" in log
    assert read_status(tmp_path / "runs" / "bf" / "i1.1") == 126


def test_the_command_gets_the_controller_s_limit_of_descriptors(tmp_path: Path) -> None:
    """The shim holds no descriptor per command, so it raises no limit they would get."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))  # (below the hard one)
    try:
        _, log = run_one(LocalBackend(tmp_path / "runs"), spec(("sh", "-c", "ulimit -n")))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert log.strip() == str(min(soft, 512))


def _spares(directory: Path) -> dict[int, str]:
    """The shim's spare files in `directory`, by inode, once it made all it makes (SPARES:
    one at a time, so a look after the first would miss those the next start takes)."""
    deadline = time.monotonic() + 5
    while len(found := _spare_files(directory)) < SPARES:
        assert time.monotonic() < deadline, f"{len(found)} spare file(s) made, not {SPARES}"
        time.sleep(0.01)
    return found


def _spare_files(directory: Path) -> dict[int, str]:
    found = {}
    for p in (directory / ".spares").glob("*"):
        with contextlib.suppress(FileNotFoundError):  # (taken meanwhile)
            found[p.stat().st_ino] = p.name
    return found


def test_a_start_takes_its_log_and_pid_file_from_the_spares_made_while_the_last_ran(
    tmp_path: Path,
) -> None:
    """Creating a file is the slow part of a start on a busy disk: after a start, the shim
    makes files ahead in its directory, and the next start there renames and links them."""
    backend = LocalBackend(tmp_path / "runs")
    runs = tmp_path / "runs" / "bf"
    assert run_one(backend, spec(("true",)))[0] == Outcome("succeeded", 0)
    spares = _spares(runs)
    handle, log = backend.start(spec(("sh", "-c", "echo second; exit 3"), instance="i2"))
    assert log is not None
    assert settle(backend, {("i2", 1): handle})[("i2", 1)] == Outcome("failed", 3, "exit code 3")
    assert Path(log).read_text() == "second\n"
    assert (runs / "i2.1.pid").read_text() == f"{handle['pid']}\n3\n"
    assert Path(log).stat().st_ino in spares
    assert (runs / "i2.1.pid").stat().st_ino in spares
    assert (runs / "i2.1.pid").stat().st_nlink == 1  # (the spare's own name is gone)
    assert oct((runs / "i2.1.pid").stat().st_mode & 0o777) == "0o600"
    backend.close()
    assert not (runs / ".spares").exists()  # the shim removed its spares as it ended


def test_a_pid_file_already_there_still_keeps_a_start_with_spares_from_running(
    tmp_path: Path,
) -> None:
    """The link of a spare to the pid file fails if one is there, as the exclusive
    creation did: whoever claimed it first (`recover`) decides; nothing runs."""
    backend = LocalBackend(tmp_path / "runs")
    runs = tmp_path / "runs" / "bf"
    run_one(backend, spec(("true",)))
    _spares(runs)
    (runs / "i2.1.pid").write_text("")  # a newer controller's claim
    marker = tmp_path / "ran"
    outcome, _ = run_one(backend, spec(("touch", str(marker)), instance="i2"))
    assert outcome == NOT_RUN
    assert not marker.exists()
    assert (runs / "i2.1.pid").read_text() == ""
    # The spare is still one: the next start takes it.
    spares = _spares(runs)
    handle, _ = backend.start(spec(("true",), instance="i3"))
    settle(backend, {("i3", 1): handle})
    assert (runs / "i3.1.pid").stat().st_ino in spares
    backend.close()


def test_a_log_planted_as_a_link_is_never_written_through_with_spares_either(
    tmp_path: Path,
) -> None:
    """A spare is renamed only where no file is: a link planted at the log keeps the
    command from running, as the open with O_NOFOLLOW does without spares."""
    backend = LocalBackend(tmp_path / "runs")
    runs = tmp_path / "runs" / "bf"
    run_one(backend, spec(("true",)))
    _spares(runs)
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    (runs / "i2.1.log").symlink_to(target)
    marker = tmp_path / "ran"
    outcome, _ = run_one(backend, spec(("touch", str(marker)), instance="i2"))
    assert not outcome.started, outcome
    assert (runs / "i2.1.log").is_symlink()
    assert target.read_text() == "keep\n"
    assert not marker.exists()
    backend.close()


def test_backfills_that_start_in_turn_each_keep_their_spares(tmp_path: Path) -> None:
    """Several backfills running at once start in turn in their own directories: each
    keeps its spares (those of the last DIRECTORIES), so no start creates a file."""
    backend = LocalBackend(tmp_path / "runs")
    bf, other = tmp_path / "runs" / "bf", tmp_path / "runs" / "other"
    run_one(backend, spec(("true",)))
    first = _spares(bf)
    elsewhere = replace(spec(("echo", "other"), instance="j1"), backfill="other")
    assert run_one(backend, elsewhere) == (Outcome("succeeded", 0), "other\n")
    _spares(other)  # made there too
    assert set(first) <= {p.stat().st_ino for p in (bf / ".spares").glob("*")}  # kept here
    handle, _ = backend.start(spec(("true",), instance="i2"))
    settle(backend, {("i2", 1): handle})
    assert (bf / "i2.1.pid").stat().st_ino in first
    # A directory deleted under the shim: its spares are gone, the start creates.
    shutil.rmtree(other)
    assert run_one(backend, replace(elsewhere, instance="j2")) == (
        Outcome("succeeded", 0),
        "other\n",
    )
    # Past DIRECTORIES directories, the least recently started in gives its spares up.
    for n in range(DIRECTORIES):
        run_one(backend, replace(spec(("true",), instance=f"k{n}"), backfill=f"b{n}"))
    assert not (bf / ".spares").exists()
    backend.close()
    assert not list((tmp_path / "runs").glob("*/.spares"))


def test_the_spares_of_a_killed_shim_are_removed_by_the_next_one(tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "bf"
    first = LocalBackend(tmp_path / "runs")
    run_one(first, spec(("true",)))
    left = set(_spares(runs).values())
    (shim,) = first._starts.shims()
    os.kill(shim.pid, signal.SIGKILL)
    os.waitpid(shim.pid, 0)
    assert {p.name for p in (runs / ".spares").glob("*")} == left  # (kill -9 leaves them)
    second = LocalBackend(tmp_path / "runs")
    assert run_one(second, spec(("true",), instance="i2"))[0] == Outcome("succeeded", 0)
    assert not left & set(_spares(runs).values())
    second.close()
    assert not (runs / ".spares").exists()


def test_a_spares_directory_planted_as_a_link_gets_no_spares(tmp_path: Path) -> None:
    """Spares are made only in a directory of this user's, never through a link: the
    starts there create their files."""
    runs = tmp_path / "runs" / "bf"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    backend = LocalBackend(tmp_path / "runs")
    runs.mkdir(parents=True, mode=0o700)
    (runs / ".spares").symlink_to(elsewhere)
    for n in range(3):
        outcome, log = run_one(backend, spec(("echo", "ran"), instance=f"i{n}"))
        assert (outcome, log) == (Outcome("succeeded", 0), "ran\n")
    assert not list(elsewhere.iterdir())
    backend.close()
    assert (runs / ".spares").is_symlink()


def _shim_cpu() -> float:
    """Seconds of CPU this process's shim (its child running shim.py) has used."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"backends/local/shim.py" in cmdline:
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise AssertionError("no shim runs")


@pytest.mark.parametrize("planted", ["a link", "names taken"])
def test_a_directory_that_cannot_have_spares_does_not_keep_the_shim_busy(
    tmp_path: Path, planted: str
) -> None:
    """The shim makes spares only while nothing else waits, one per turn of its loop: one
    that cannot be made (a `.spares` planted as a link, its names taken) ends the making
    until the next start there, so a running command's wait is not a busy loop."""
    backend = LocalBackend(tmp_path / "runs")
    other = replace(spec(("true",)), backfill="other")
    assert run_one(backend, other)[0] == Outcome("succeeded", 0)
    runs = tmp_path / "runs" / "bf"
    runs.mkdir(mode=0o700)
    if planted == "a link":
        (tmp_path / "elsewhere").mkdir()
        (runs / ".spares").symlink_to(tmp_path / "elsewhere")
    else:
        (runs / ".spares").mkdir(mode=0o700)
        shim = next(p.name.split(".")[0] for p in (tmp_path / "runs/other/.spares").iterdir())
        for n in range(1, 1000):  # (whatever the shim's count of spares made is)
            (runs / ".spares" / f"{shim}.{n}").touch()
    before = _shim_cpu()
    outcome, log = run_one(backend, spec(("sh", "-c", "sleep 0.5; echo slept")))
    assert (outcome, log) == (Outcome("succeeded", 0), "slept\n")
    assert _shim_cpu() - before < 0.2
    backend.close()
