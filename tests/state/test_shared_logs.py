"""Logs from anywhere a shared store is reachable (issue 14): at an attempt's end the
controller keeps its log's last MiB in a PostgreSQL store (usecases/attempt_logs.py),
and `backfillctl logs` reads that copy where the file is not, says when its start was
left out, and says where an attempt that still runs runs.

keep_log without a server (an in-memory store named like a PostgreSQL one); the rest in
the PostgreSQL tier (BACKFILLCTL_PG=1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_ctl.cli import logs
from backfill_ctl.core.records import AttemptRecord
from backfill_ctl.state import StateStore, open_store
from backfill_ctl.state.memory import MemoryStore
from backfill_ctl.usecases import attempt_logs
from backfill_ctl.usecases.attempt_logs import CAP, log_copy
from tests.cli.helpers import run
from tests.state.contract import AT, end, seeded, start
from tests.tools.postgres import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
BACKFILLCTL = str(Path(sys.executable).parent / "backfillctl")


def ran(store: StateStore, log: str, ident: str = "a1") -> None:
    start(store, ident)
    store.set_attempt_handle(ident, 1, {"pid": 1, "base": log[:-4]}, log)
    end(store, ident, 1)


def test_the_end_of_a_log_is_copied_for_a_shared_store_only(tmp_path: Path) -> None:
    log = tmp_path / "a1.1.log"
    log.write_bytes(b"x" * (CAP + 10) + "é\n".encode())
    shared = seeded(MemoryStore("postgresql://ann@db/bf"))
    ran(shared, str(log))
    copy = log_copy(shared, str(log))
    assert copy is not None
    text, size = copy
    assert size == CAP + 13 and text.endswith("xé\n") and len(text.encode()) == CAP

    local = seeded(MemoryStore("/srv/state.db"))  # a file: the logs lie beside it
    assert log_copy(local, str(log)) is None


def test_a_log_that_cannot_be_read_is_only_not_copied(tmp_path: Path) -> None:
    store = seeded(MemoryStore("postgresql://ann@db/bf"))
    gone = str(tmp_path / "gone.log")
    assert log_copy(store, gone) is None  # no file
    assert log_copy(store, None) is None  # no log named
    (tmp_path / "gone.log").write_text("out\n")
    assert log_copy(store, gone) == ("out\n", 4)
    assert attempt_logs.log_tail(gone, 2) == (b"t\n", 4)


# -- PostgreSQL (BACKFILLCTL_PG=1) ------------------------------------------------------


def test_logs_read_the_store_s_copy_where_the_file_is_not(pg_url: str, tmp_path: Path) -> None:
    store = seeded(open_store(pg_url))
    ran(store, "/elsewhere/a1.1.log")
    store.save_log("a1", 1, "row 2\nrow 3\n", size=3 << 20, at=AT + 20)
    ran(store, "/elsewhere/o1.1.log", "o1")
    store.save_log("o1", 1, "all of it\n", size=10, at=AT + 20)

    cut = run("logs", "a1", "--state-file", pg_url)
    assert (cut.exit_code, cut.stdout) == (0, "row 2\nrow 3\n")
    assert cut.stderr == (
        "note: the store keeps the end of the log of attempt 1 of a1: its last 12 bytes of "
        "3.0 MiB (the whole log: /elsewhere/a1.1.log, where it ran)\n"
    )
    whole = run("logs", "o1", "--tail", "1", "--state-file", pg_url)
    assert (whole.exit_code, whole.stdout, whole.stderr) == (0, "all of it\n", "")
    assert PASSWORD not in cut.stderr + whole.stderr


def test_logs_of_an_attempt_running_elsewhere_say_where_and_follow_to_its_end(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = seeded(open_store(pg_url))
    store.acquire_lease("ctl-7", pid=7, host="build-7", at=AT, ttl=30)
    start(store, "a1")
    store.set_attempt_handle("a1", 1, {"pid": 1, "base": "/srv/r/a1.1"}, "/srv/r/a1.1.log")

    shown = run("logs", "a1", "--state-file", pg_url)
    assert (shown.exit_code, shown.stdout) == (0, "")
    assert shown.stderr == (
        "note: attempt 1 of a1 runs elsewhere: on the machine of the controller (ctl-7 on "
        "build-7), its log /srv/r/a1.1.log there; the store keeps the end of its log when it "
        "ends (logs -f waits for it)\n"
    )

    steps = [lambda: end(store, "a1", 1), lambda: None, lambda: store.save_log(
        "a1", 1, "done\n", size=5, at=AT + 11)]  # fmt: skip
    monkeypatch.setattr(logs, "_sleep", lambda seconds: steps.pop(0)())
    followed = run("logs", "a1", "-f", "--state-file", pg_url)
    assert (followed.exit_code, followed.stdout, followed.stderr) == (0, "done\n", "")
    assert steps == []


def test_an_example_run_on_postgresql_has_its_logs_read_from_another_directory(
    pg_url: str, tmp_path: Path
) -> None:
    shutil.copytree(
        ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("out", "__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKFILLCTL_", "PG"))}
    env["PYTHONPATH"] = str(ROOT)

    def backfillctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BACKFILLCTL, *args],
            capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=600,
        )  # fmt: skip

    applied = backfillctl("apply", "specs/", "--as", "oncall", "--wait", "--state", pg_url,
                          cwd=tmp_path)  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    store = open_store(pg_url)
    ran_here = [a for a in store.attempts() if a.log and Path(a.log).stat().st_size > 0]
    assert ran_here
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    for attempt in ran_here[:3]:
        kept = store.stored_log(attempt.instance, attempt.number)
        assert kept is not None and kept.cut == 0
        shown = backfillctl("logs", attempt.instance, "--state-file", pg_url, cwd=laptop)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == Path(attempt.log or "").read_text()
    shutil.rmtree(tmp_path / ".backfillctl")  # the files gone: the store's copies remain
    attempt = ran_here[0]
    again = backfillctl("logs", attempt.instance, "--state-file", pg_url, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == shown_text(store, attempt)


def shown_text(store: StateStore, attempt: AttemptRecord) -> str:
    kept = store.stored_log(attempt.instance, attempt.number)
    assert kept is not None
    return str(kept.text)
