"""Timeouts under clock oddities, with real controller processes: a timeout is measured on
a monotonic timer, and an adopted attempt keeps what is left of it whatever the clock of
the controller that adopts it says (`--now` far in the past, a clock set back)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from backfill_ctl.state import open_store
from tests.test_faults import _nothing_left_running, lines, start, stop, traced
from tests.test_reliability import alive, wait_until

__all__ = ["_nothing_left_running"]  # (the fixture: nothing of a test runs on after it)


def test_an_attempt_adopted_by_a_controller_whose_clock_is_behind_still_times_out(
    tmp_path: Path,
) -> None:
    """A controller on the wall clock starts an attempt with a 3 s timeout and is killed;
    one started with --now a year back adopts it: by its clock the attempt began in a
    year's time, yet it is stopped once its timeout is up, not left to run for ever."""
    spec_dir, db, trace = traced(tmp_path, "sleep 120", days=1, timeout="3s")
    log = tmp_path / "controller.log"
    first = start(spec_dir, db, log)
    store = open_store(db)
    try:
        (attempt,) = wait_until(lambda: store.attempts(states=["running"]), 30, "a start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        adopted_at = time.monotonic()
        second = start(spec_dir, db, log, "--now", "2023-03-01T00:00:00Z")
        try:
            wait_until(lambda: store.instances(states=["failed"]), 30, "the timeout", log.read_text)
        finally:
            stop(second)
    finally:
        stop(first)
    took = time.monotonic() - adopted_at
    assert "adopted attempt 1" in log.read_text()
    assert store.instances()[0].reason == "timed out after 3s"
    assert took < 3 + 5 + 10  # its timeout, the grace before KILL, and the start
    assert not alive(int(attempt.handle["pid"]))
    assert [x[0] for x in lines(trace)] == ["start"]


def test_a_retry_recorded_by_a_controller_whose_clock_is_ahead_waits_only_its_delay(
    tmp_path: Path,
) -> None:
    """A controller started with --now a year ahead records the first attempt's failure,
    its retry due in 2 s by its clock, and is stopped; one on the wall clock takes over:
    the retry starts within its 2 s delay of that, not a year later."""
    first_fails = f'[ -e "{tmp_path}/failed" ] || {{ touch "{tmp_path}/failed"; exit 1; }}'
    spec_dir, db, trace = traced(tmp_path, first_fails, days=1, retries=1, retryDelay="2s")
    log = tmp_path / "controller.log"
    ahead = start(spec_dir, db, log, "--now", "2027-06-01T00:00:00Z")
    store = open_store(db)
    try:
        wait_until(
            lambda: "retrying at 2027" in (store.instances()[0].reason or ""), 30, "the retry"
        )
    finally:
        stop(ahead)
    taken_at = time.monotonic()
    second = start(spec_dir, db, log)
    try:
        wait_until(lambda: store.instances(states=["succeeded"]), 30, "the retry", log.read_text)
    finally:
        stop(second)
    assert time.monotonic() - taken_at < 2 + 10  # its delay, and the start
    assert [a.state for a in store.attempts()] == ["failed", "succeeded"]
    assert [x[0] for x in lines(trace)] == ["start", "start", "end"]
