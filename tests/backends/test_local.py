"""The local backend: the backend contract with real processes, and what is its own
(process groups, the TERM-then-KILL grace, the working directory, `$gmtdate`)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backfill_ctl.backends import BackendError, Outcome
from backfill_ctl.backends import local as local_module
from backfill_ctl.backends.local import LocalBackend
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
    assert (tmp_path / "runs" / "bf" / "abc.3.status").read_text() == "2\n"
    assert (tmp_path / "runs" / "bf" / "abc.3.pid").read_text().strip() == str(handle["pid"])


def test_files_left_by_a_store_thrown_away_do_not_count(tmp_path: Path) -> None:
    """Ids are stable: a new store's first attempt has the name of an old one's."""
    s = spec(("echo", "new"))
    old = LocalBackend(tmp_path / "runs")
    handle, _ = old.start(spec(("sh", "-c", "echo old; exit 9")))
    settle(old, {s.key: handle})
    outcome, log = run_one(LocalBackend(tmp_path / "runs"), s)
    assert (outcome, log) == (Outcome("succeeded", 0), "new\n")


def test_an_attempt_runs_in_its_working_directory(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    _, log = run_one(LocalBackend(tmp_path / "runs"), spec(("pwd",), cwd=str(tmp_path / "repo")))
    assert log == f"{tmp_path / 'repo'}\n"


def test_a_missing_working_directory_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"working directory .*/gone does not exist"):
        LocalBackend(tmp_path / "runs").start(spec(("true",), cwd=str(tmp_path / "gone")))


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
    """The controller died between spawning the wrapper and recording the attempt; the
    next one calls recover before the wrapper got going: one of them must lose."""
    marker = tmp_path / "ran"
    for n in range(20):  # recover right after start: sometimes first, sometimes not
        s = spec(("sh", "-c", f"echo x >> {marker}"), number=n + 1)
        first = LocalBackend(tmp_path / "runs")
        handle, _ = first.start(s)
        found = LocalBackend(tmp_path / "runs").recover(s)
        ended = settle(first, {s.key: handle})[s.key]
        if found is None:  # declared unstarted: the wrapper must not run the command
            assert ended == Outcome("failed", 125, "exit code 125")
        else:  # it had started: it runs to the end, once
            assert ended == Outcome("succeeded", 0)
    runs = marker.read_text().count("x") if marker.exists() else 0
    started = sum(
        1 for p in (tmp_path / "runs" / "bf").glob("i1.*.status") if p.read_text() == "0\n"
    )
    assert runs == started


def test_an_attempt_whose_process_vanished_without_a_status_is_lost(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    gone = {"pid": 2**22 + 1, "base": str(tmp_path / "runs" / "bf" / "x.1")}
    assert LocalBackend(tmp_path / "runs").poll({("x", 1): gone}) == {
        ("x", 1): Outcome("lost", None, "the process ended without an exit status")
    }
    assert backend.log_text(gone, None) == ""
