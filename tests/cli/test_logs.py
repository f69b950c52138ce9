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
from tests.builders import backfill, node
from tests.cli.helpers import ran_checkout, run
from tests.test_reliability import specs
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


def test_logs_of_an_instance_that_never_runs_says_why(tmp_path: Path) -> None:
    """A dry-run (a blocked intermediate node) ran nothing, and a cancelled instance
    (its backfill deleted) will not run: neither "has not run yet", nor "why it waits"."""
    nodes = (
        node("a", resourceGroup="rg", command="echo a"),
        node("b", upstream=["a"], resourceGroup="rg", command="echo b"),
        node("c", upstream=["b"], resourceGroup="rg", command="echo c"),
        backfill(select={"method": "descendants", "roots": ["a"], "block": ["b"]}),
    )
    state = ("--state-file", str(tmp_path / "s.db"))
    applied = run("apply", str(specs(tmp_path, *nodes)), "--as", "ops", *state, "--wait")
    assert applied.exit_code == 0, applied.stderr
    later = backfill("later", select={"method": "manual", "roots": ["a"]}, dates=["2099-01-01"])
    assert run("apply", str(specs(tmp_path, *nodes, later)), "--as", "ops", *state).exit_code == 0
    assert run("delete", "backfill/later", "--as", "ops", *state).exit_code == 0
    dry = run("logs", _id(state, "bf", "b"), *state)
    assert dry.exit_code == 2
    assert dry.stderr.splitlines() == [
        f"error: instance {_id(state, 'bf', 'b')} is a dry-run (blocklisted): nothing ran, "
        "so it has no log",
        f"  hint: backfillctl describe instance/{_id(state, 'bf', 'b')} says why",
    ]
    gone = run("logs", _id(state, "later", "a"), *state)
    assert gone.exit_code == 2
    assert gone.stderr.splitlines() == [
        f"error: instance {_id(state, 'later', 'a')} was cancelled before it ran "
        "(backfill deleted by ops): it has no log",
        f"  hint: backfillctl describe instance/{_id(state, 'later', 'a')} says why",
    ]


def _id(state: tuple[str, str], backfill_name: str, node_name: str) -> str:
    listed = run(
        "get", "instances", "--backfill", backfill_name, "--node", node_name, "-o", "name", *state
    )
    return listed.stdout.split()[0].removeprefix("instance/")
