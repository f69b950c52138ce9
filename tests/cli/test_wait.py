"""`backfillctl wait` through the real app, while a real controller runs the backfill."""

from __future__ import annotations

import itertools
import re
from io import StringIO
from pathlib import Path

import pytest

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.cli import wait
from backfill_ctl.cli.waiting import Progress, Snapshot, clock_text
from backfill_ctl.runtime.controller import Controller
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.running import applied, controller

CHAIN = (node("a", resourceGroup="rg"), node("b", upstream=["a"], resourceGroup="rg"))


class Clock:
    """wait's clock, moved by its sleeps; each sleep lets the controller tick."""

    def __init__(self, c: Controller | None) -> None:
        self.now, self.c, self.slept = 0.0, c, 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += 1
        if self.c is not None:
            self.c.tick()


def waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: FakeBackend | None
) -> tuple[Path, Clock]:
    store = applied(tmp_path, *CHAIN, backfill(dates=["2024-03-01"]))
    clock = Clock(controller(store, backend) if backend is not None else None)
    monkeypatch.setattr(wait, "clock", clock)
    monkeypatch.setattr(wait, "_sleep", clock.sleep)
    return tmp_path / "state.db", clock


def test_wait_until_the_controller_made_it_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, clock = waiting(tmp_path, monkeypatch, FakeBackend())
    args = ("wait", "backfill/bf", "--for=condition=Succeeded", "--timeout", "1h")
    result = run(*args, "--state-file", str(db))
    assert result.exit_code == 0, result.stderr
    assert clock.slept >= 2  # it looked while the controller ran a, then b
    assert result.stderr.splitlines()[-1] == "backfill/bf condition met: Succeeded"
    again = run("wait", "bf", "--for", "condition=finished", "--state-file", str(db))
    assert again.exit_code == 0, again.stderr


def test_wait_for_success_of_a_failed_backfill_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = waiting(tmp_path, monkeypatch, FakeBackend(lambda spec: 3))
    result = run("wait", "backfill/bf", "--for=condition=Succeeded", "--state-file", str(db))
    assert result.exit_code == 1
    assert "error: backfill/bf is Failed (" in result.stderr
    assert "condition=Succeeded can no longer be met" in result.stderr
    failed = run("wait", "backfill/bf", "--for=condition=Failed", "--state-file", str(db))
    assert failed.exit_code == 0, failed.stderr


def test_a_timeout_says_where_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, clock = waiting(tmp_path, monkeypatch, None)  # no controller: nothing moves
    result = run(
        "wait", "bf", "--for=condition=Succeeded", "--timeout", "3s", "--state-file", str(db)
    )
    assert result.exit_code == wait.TIMED_OUT == 124
    assert clock.now == 3.0
    lines = result.stderr.splitlines()
    assert lines[0].startswith("note: no controller holds the lease")
    assert "error: timed out after 3s waiting for condition=Succeeded" in lines
    assert any(line.startswith("  backfill/bf is Pending (") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--for=condition=Done",), "error: --for=condition=Done: unknown condition 'Done'"),
        (("--for=delete",), "error: --for=delete: expected condition=NAME"),
        (("--for=condition=Failed", "--timeout", "soon"), "error: --timeout: 'soon' is not"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    db, _ = waiting(tmp_path, monkeypatch, None)
    result = run("wait", "bf", *args, "--state-file", str(db))
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    unknown = run("wait", "nope", "--for=condition=Failed", "--state-file", str(db))
    assert unknown.exit_code == 2


def test_help_has_examples() -> None:
    assert "Examples:\n    backfillctl wait" in run("wait", "-h").stdout


PROGRESS = re.compile(
    r"progress: (\d+)/2 finished: ([a-z0-9 ,-]+) "
    r"\(elapsed \d+:\d\d, (-|\d+\.\d)/min, ETA (\?|\d+:\d\d)\)"
)


def test_off_a_terminal_progress_is_a_plain_line_per_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = waiting(tmp_path, monkeypatch, FakeBackend())
    result = run("wait", "bf", "--for=condition=Succeeded", "--state-file", str(db))
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    lines = [m for line in result.stderr.splitlines() if (m := PROGRESS.fullmatch(line))]
    assert len(lines) >= 2, result.stderr
    counts = [m[2] for m in lines]
    assert all(a != b for a, b in itertools.pairwise(counts))  # only changes
    assert (lines[-1][1], lines[-1][2]) == ("2", "2 succeeded")
    assert lines[-1][4] == "0:00"  # all finished: nothing left
    assert lines[-1][3] != "-"  # wait's clock moved while they finished: a rate


class Counts:
    """A store with only counts(), which the test sets."""

    def __init__(self) -> None:
        self.now: dict[tuple[str, str], int] = {}
        self.reads = 0

    def counts(self) -> dict[tuple[str, str], int]:
        self.reads += 1
        return dict(self.now)


def test_on_a_terminal_one_live_line_redrawn_only_on_change_or_a_new_second() -> None:
    from rich.console import Console

    screen = StringIO()
    console = Console(file=screen, force_terminal=True, color_system="standard", width=140)
    store, time = Counts(), [100.0]
    store.now = {("bf", "running"): 2, ("bf", "pending"): 2, ("other", "failed"): 9}
    progress = Progress(
        store,  # type: ignore[arg-type]
        ["bf"],
        console=console,
        clock=lambda: time[0],
    )

    progress()
    first = screen.getvalue()
    assert "0/4" in first and "2 running" in first and "ETA ?" in first
    assert "\x1b[36m" in first  # running in cyan
    assert "other" not in first and "9 failed" not in first
    time[0] = 100.6
    progress()
    assert screen.getvalue() == first  # nothing changed, the clock not a second on
    time[0] = 101.2
    progress()
    assert "elapsed 0:01" in screen.getvalue()[len(first) :]
    store.now = {("bf", "succeeded"): 2, ("bf", "running"): 2}
    time[0] = 101.3
    progress()
    assert screen.getvalue().count("2/4") == 1
    shown = screen.getvalue()
    progress.close()
    last = screen.getvalue()[len(shown) :]
    assert "2/4" in last and "2 succeeded" in last and "/min" in last
    assert last.endswith("\x1b[?25h")  # the cursor shown again


def test_snapshot_rate_and_eta() -> None:
    snap = Snapshot({"succeeded": 4, "failed": 1, "pending": 5}, elapsed=150.0, finished_before=2)
    assert (snap.total, snap.finished) == (10, 5)
    assert snap.rate == pytest.approx(1.2)  # 3 finished in 2.5 minutes
    assert snap.eta == pytest.approx(250.0)
    assert snap.timing() == "elapsed 2:30, 1.2/min, ETA 4:10"
    assert clock_text(3723) == "1:02:03"
    assert Snapshot({"pending": 3}, elapsed=9.0).timing() == "elapsed 0:09, -/min, ETA ?"


def test_off_a_terminal_a_line_at_most_every_few_seconds_and_the_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from backfill_ctl.cli.waiting import PLAIN_EVERY, Progress

    store, time = Counts(), [100.0]
    progress = Progress(store, ["bf"], clock=lambda: time[0])  # type: ignore[arg-type]
    for step in range(40):  # one more finished every tenth of PLAIN_EVERY
        store.now = {("bf", "succeeded"): step, ("bf", "pending"): 40 - step}
        time[0] = 100.0 + step * PLAIN_EVERY / 10
        progress()
    progress.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("progress")]
    assert [line.split(" finished")[0] for line in lines] == [
        "progress: 0/40",
        "progress: 10/40",
        "progress: 20/40",
        "progress: 30/40",
        "progress: 39/40",  # the last counts, at close
    ]
    # The store is read only when a line may be due: the first, each PLAIN_EVERY, close.
    assert store.reads == 1 + 3 + 1


def test_ticks_a_millisecond_apart_read_the_counts_only_when_something_may_be_shown() -> None:
    """A controller can tick a thousand times a second: a read of the store's counts and
    a redraw at each would cost as much as the tick (issue 15)."""
    from rich.console import Console

    from backfill_ctl.cli.waiting import DRAW_EVERY, PLAIN_EVERY, Progress

    time = [100.0]
    for console in (None, Console(file=StringIO(), force_terminal=True, width=140)):
        store = Counts()
        progress = Progress(store, ["bf"], console=console, clock=lambda: time[0])  # type: ignore[arg-type]
        for step in range(1000):
            store.now = {("bf", "succeeded"): step % 5, ("bf", "pending"): 5 - step % 5}
            time[0] = 100.0 + step / 1000
            progress()
        every = PLAIN_EVERY if console is None else DRAW_EVERY
        assert 1 <= store.reads <= 1 + 1 / every + 1, (console, store.reads)
        progress.close()
