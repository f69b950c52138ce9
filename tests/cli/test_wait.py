"""`backfillctl wait` through the real app, while a real controller runs the backfill."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.cli import wait
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
