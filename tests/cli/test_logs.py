"""`logs --tail/--since/--timestamps` through the real app, on test_progress's store.

The log of a1 was last written ten minutes before T0 (its file's modification time)."""

from __future__ import annotations

import functools
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import Result

from backfill_ctl.cli import logs
from backfill_ctl.state import open_store
from tests.cli.helpers import ran_checkout, run
from tests.usecases.test_progress import T0, make_store

LOG = "loading 2024-03-01\nrow 1\ndone\n"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setattr(logs, "clock", lambda: T0)
    (tmp_path / "logs").mkdir()
    make_store(tmp_path / "s.db", tmp_path / "logs")
    for name in ("a1", "a3"):
        log = tmp_path / "logs" / f"{name}.1.log"
        log.write_text(LOG)
        os.utime(log, (T0 - 600, T0 - 600))
    return tmp_path / "s.db", tmp_path / "logs"


def finish(db: Path, ident: str) -> None:
    open_store(db).end_attempt(
        ident,
        1,
        attempt_state="succeeded",
        exit_code=0,
        message=None,
        instance_state="succeeded",
        at=T0 + 1,
        actor="controller",
        origin="test",
    )


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_tail(cli: tuple[Path, Path]) -> None:
    db, _ = cli
    assert ok(run("logs", "a1", "--tail", "2", "--state-file", str(db))) == "row 1\ndone\n"
    assert ok(run("logs", "a1", "--tail", "0", "--state-file", str(db))) == ""
    assert ok(run("logs", "a1", "--tail", "-1", "--state-file", str(db))) == LOG


def test_since_keeps_a_log_written_within_it(cli: tuple[Path, Path]) -> None:
    db, _ = cli
    assert ok(run("logs", "a1", "--since", "15m", "--state-file", str(db))) == LOG
    late = run("logs", "a1", "--since", "5m", "--state-file", str(db))
    assert ok(late) == ""
    assert late.stderr == (
        "note: the log of attempt 1 of a1 was last written 10m ago (2024-03-20T00:50:00Z), "
        "before --since 5m\n"
    )
    bad = run("logs", "a1", "--since", "soon", "--state-file", str(db))
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --since: 'soon' is not a duration")
    huge = run("logs", "a1", "--since", "99999999999d", "--state-file", str(db))
    assert huge.exit_code == 2
    assert huge.stderr.splitlines() == [
        "error: --since: '99999999999d' is longer than the limit of 36600d (100 years)",
        "  hint: like 90s, 30m, 2h or 1h30m",
    ]


def test_timestamps_are_the_last_write(cli: tuple[Path, Path]) -> None:
    db, _ = cli
    shown = ok(run("logs", "a1", "--timestamps", "--tail", "1", "--state-file", str(db)))
    assert shown == "2024-03-20T00:50:00Z done\n"


def test_follow_stamps_what_comes_with_the_time_it_was_read(
    cli: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, folder = cli
    log = folder / "a3.1.log"
    now = [T0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        log.write_text(LOG + "row 2\n")
        finish(db, "a3")

    monkeypatch.setattr(logs, "clock", lambda: now[0])
    monkeypatch.setattr(logs, "_sleep", sleep)
    shown = run(
        "logs",
        "a3",
        "-f",
        "--tail",
        "1",
        "--timestamps",
        "--follow-limit",
        "5",
        "--state-file",
        str(db),
    )
    assert ok(shown) == "2024-03-20T00:50:00Z done\n2024-03-20T01:00:00Z row 2\n"


def test_help_has_examples() -> None:
    assert "Examples:\n    backfillctl logs" in run("logs", "-h").stdout


def test_the_log_of_a_checkout_that_moved_is_found_beside_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store names the log where it was written; the checkout (store and runs
    directory with it) moved since: the log is read where it is now."""
    ident = ran_checkout(tmp_path / "a", monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").rename(tmp_path / "c")
    monkeypatch.chdir(tmp_path / "c")

    shown = run("logs", ident)

    assert (shown.exit_code, shown.stdout, shown.stderr) == (0, "ran\n", "")


def test_follow_holds_a_character_split_between_two_reads(
    cli: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer's buffer that ends inside a multi-byte character: the poll that sees half
    of it neither prints a U+FFFD for it nor, at the next poll, the whole log again."""
    db, folder = cli
    log = folder / "a3.1.log"
    text = "日本語 ok\n".encode()
    log.write_bytes(b"start\n" + text[:4])  # 日 and the first byte of 本
    steps = [
        lambda: log.write_bytes(b"start\n" + text[:5]),  # still half of it
        lambda: (log.write_bytes(b"start\n" + text), finish(db, "a3")),
    ]
    monkeypatch.setattr(logs, "_sleep", lambda seconds: steps.pop(0)())
    shown = run("logs", "a3", "-f", "--follow-limit", "5", "--state-file", str(db))
    assert ok(shown) == "start\n日本語 ok\n"


def test_tail_counts_lines_by_newline_alone(cli: tuple[Path, Path]) -> None:
    """A progress bar redrawn with \\r is one line, as kubectl logs --tail counts it."""
    db, folder = cli
    (folder / "a1.1.log").write_bytes(b"first\nloading 10%\rloading 100%\nlast \x0c page\n")
    shown = run("logs", "a1", "--tail", "2", "--state-file", str(db))
    assert ok(shown) == "loading 10%\rloading 100%\nlast \x0c page\n"


def _limited(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def test_tail_and_follow_of_a_huge_log_read_its_end_only(cli: tuple[Path, Path]) -> None:
    """A 4 GiB log (sparse: no disk used) under a 1 GiB memory limit: `--tail` reads
    blocks back from its end, `-f` what was appended; neither reads it whole."""
    db, folder = cli
    log = folder / "a3.1.log"
    with log.open("wb") as f:
        f.truncate(4 << 30)
        f.seek(0, 2)
        f.write(b"\nlast row\n")
    command = [sys.executable, "-m", "backfill_ctl", "logs", "a3", "--state-file", str(db)]
    limit = functools.partial(_limited, 1 << 30)
    tail = subprocess.run(
        [*command, "--tail", "1"], capture_output=True, timeout=60, preexec_fn=limit, check=False
    )
    assert (tail.returncode, tail.stdout, tail.stderr) == (0, b"last row\n", b"")

    follow = subprocess.Popen(
        [*command, "--tail", "1", "-f", "--follow-limit", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit,
    )
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == b"last row\n"
        with log.open("ab") as f:
            f.write("more 日本\n".encode())
        finish(db, "a3")
        out, err = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert (follow.returncode, out.decode(), err) == (0, "more 日本\n", b"")
