"""What `stop --force` reads of an instance's events (usecases/force_stop.py): its
current attempt's, and whether the lease's holder recorded that attempt out of reach."""

from __future__ import annotations

from backfill_ctl.core.records import EventRecord, Lease
from backfill_ctl.usecases.force_stop import (
    FORCE_STOP,
    OUT_OF_REACH,
    forced_by,
    refusal,
    since_begun,
)

B = "controller:b"
LEASE = Lease(B, 7, "host-b", 0.0, 30.0, 2)


def event(n: int, kind: str, frm: str | None, to: str | None, origin: str = "cli") -> EventRecord:
    return EventRecord(n, float(n), "ops", kind, "bf", "i1", frm, to, None, origin)


ATTEMPT_1 = [
    event(1, "transition", "pending", "running", B),
    event(2, OUT_OF_REACH, "running", "running", B),
    event(3, FORCE_STOP, "running", "running"),
    event(4, "transition", "running", "failed", B),
    event(5, "rerun", "failed", "pending"),
]


def test_only_the_current_attempts_events_count() -> None:
    """Attempt 2 (begun after a rerun) is not attempt 1: what was recorded of attempt 1
    (out of reach, forced) says nothing of it."""
    now = [*ATTEMPT_1, event(6, "transition", "pending", "running", B)]
    assert since_begun(now) == []
    assert refusal(since_begun(now), LEASE) is not None
    assert forced_by(since_begun(now)) is None
    later = [*now, event(7, "stop", "running", "running")]
    assert since_begun(later) == [later[-1]]


def test_allowed_only_when_the_leases_holder_recorded_it_out_of_reach() -> None:
    current = since_begun(ATTEMPT_1[:2])
    assert refusal(current, LEASE) is None
    other = Lease("controller:c", 8, "host-c", 0.0, 30.0, 3)  # took over since: it sees it
    assert refusal(current, other) == (
        "cannot stop --force: the controller that drives the store (pid 8 on host-c) "
        "follows its processes (it has not found them out of its reach): stop it without "
        "--force"
    )
    assert refusal(current, None) == (
        "cannot stop --force: no controller has found its attempt out of its reach: stop it "
        "without --force"
    )
    assert forced_by(since_begun(ATTEMPT_1[:3])) == "ops"
