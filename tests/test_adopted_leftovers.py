"""What an adopted attempt's command left running, with real processes: a controller that
adopts an attempt after a restart is not the subreaper of what left the attempt's process
group before (a daemon that `setsid`s away goes to init), yet such a process still
carries the attempt's marker, and the attempt ends only once it is gone too: its retry
never runs beside it."""

from __future__ import annotations

import signal
from pathlib import Path

from backfill_ctl.state import open_store
from tests.test_faults import _nothing_left_running, lines, start, stop, traced
from tests.test_reliability import wait_until

__all__ = ["_nothing_left_running"]  # (the fixture: nothing of a test runs on after it)


def test_a_retry_never_runs_beside_a_daemon_an_adopted_attempt_left(tmp_path: Path) -> None:
    """The command starts a daemon in a session of its own (holding the instance's lock,
    as the work it does would) and fails; the controller that started it was killed, the
    one that adopted it retries only once the daemon is gone."""
    body = "setsid sh -c 'sleep 4' & sleep 1.5; exit 3"
    spec_dir, db, trace = traced(tmp_path, body, days=1, retries=1, retryDelay="0s")
    log = tmp_path / "controller.log"
    first = start(spec_dir, db, log)
    second = None
    store = open_store(db)
    try:
        wait_until(lambda: lines(trace), 30, "the first attempt", log.read_text)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start(spec_dir, db, log)
        wait_until(lambda: store.instances(states=["failed"]), 60, "both tries", log.read_text)
    finally:
        stop(first, second)
    assert "adopted attempt 1" in log.read_text()
    assert [x[0] for x in lines(trace)] == ["start", "start"]  # and no "overlap"
    first_attempt, retry = store.attempts()
    message = first_attempt.message or ""  # the daemon's shell and its sleep
    assert message.startswith("retrying after attempt 1: exit code 3 (ended ")
    assert message.endswith(" process(es) it left running)")
    assert first_attempt.finished_at is not None
    assert retry.started_at >= first_attempt.finished_at
