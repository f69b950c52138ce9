"""How the local backend starts its wrapper (posix_spawn): what the command inherits from
the controller (descriptors, signal dispositions), and its working directory, which the
wrapper enters itself."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backfill_ctl.backends import Outcome
from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.backends.local.pidfile import inherited_fds, read_status
from backfill_ctl.backends.local.shim import NO_CWD
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
    backend = LocalBackend(Path("runs"))
    s = spec(("sh", "-c", "pwd; exit 4"), cwd="repo")
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
    backend = LocalBackend(tmp_path / "runs")
    outcome, log = run_one(backend, spec(("true",), cwd=gone))
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
