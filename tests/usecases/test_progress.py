"""What `get` and `describe` compute (backfill_ctl.usecases.progress): status words, progress by
date group, why an instance waits, label selectors; on records and on a real store.

The builders here also make the stores of the CLI tests (tests/cli/test_inspect.py).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backfill_ctl.core.gates import Blocker
from backfill_ctl.core.records import BackfillRecord, InstanceRecord, Run
from backfill_ctl.state import StateStore, open_store
from backfill_ctl.usecases import progress

T0 = datetime(2024, 3, 20, 1, 0, tzinfo=UTC).timestamp()  # 09:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
DIGEST = "sha256:" + "0123456789abcdef" * 4


def backfill(name: str = "fix-orders", **kw: Any) -> BackfillRecord:
    body = {"groups": 2, "resourceGroup": "backfill-pool", **kw.pop("body", {})}
    spec = {
        "apiVersion": "backfillctl.dev/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": name},
        "spec": body,
    }
    fields: dict[str, Any] = {
        "file": f"specs/backfills/{name}.yaml",
        "labels": {"team": "retail", "ticket": "DATA-1"},
        "applied_at": T0 - 2 * 3600,
        "applied_by": "alice",
        **kw,
    }
    return BackfillRecord(name=name, digest=DIGEST, spec=spec, **fields)


def instance(
    iid: str,
    *,
    node: str = "a",
    day: int = 1,
    group: int = 0,
    seq: int = 0,
    deps: tuple[str, ...] = (),
    bf: str = "fix-orders",
    **kw: Any,
) -> InstanceRecord:
    """Business date 2024-03-DAY, scheduled 02:00 on the next day in Shanghai."""
    at = datetime(2024, 3, day + 1, 2, 0, tzinfo=SHANGHAI)
    run = Run(
        ("python", "jobs/etl.py", "--node", node, "--pt", f"202403{day:02d}"),
        env={"BACKFILL_PARAM_BIZDATE": f"202403{day:02d}"},
        timeout=3600.0,
    )
    fields: dict[str, Any] = {
        "priority": 5,
        "resource_group": "backfill-pool",
        "created_at": T0 - 2 * 3600,
        "updated_at": T0 - 2 * 3600,
        **kw,
    }
    return InstanceRecord(
        id=iid,
        backfill=bf,
        node=node,
        bizdate=f"2024-03-{day:02d}",
        cyctime=at.isoformat(),
        cyctime_epoch=at.timestamp(),
        timezone="Asia/Shanghai",
        group=group,
        sequence=seq,
        depends_on=deps,
        run=run,
        **fields,
    )


def attempt(
    store: StateStore,
    iid: str,
    *,
    start: float,
    end: float | None = None,
    code: int = 0,
    log: str | None = None,
    retry: bool = False,
) -> None:
    """One attempt of `iid`, started at `start`; ended at `end` with exit `code`."""
    number = store.begin_attempt(iid, "local", at=start, actor="controller", origin="test")
    assert number is not None
    store.set_attempt_handle(iid, number, {"pid": 1, "base": "x"}, log)
    if end is None:
        return
    ok = code == 0
    message = None if ok else f"exit code {code}"
    store.end_attempt(
        iid,
        number,
        attempt_state="succeeded" if ok else "failed",
        exit_code=code,
        message=f"retrying after attempt {number}: {message}" if retry else message,
        instance_state="pending" if retry else "succeeded" if ok else "failed",
        at=end,
        actor="controller",
        origin="test",
    )


def save(store: StateStore, record: BackfillRecord, *instances: InstanceRecord) -> None:
    store.save_apply(
        [record],
        list(instances),
        [],
        [],
        at=record.applied_at,
        actor=record.applied_by or "alice",
        origin="cli",
    )


def make_store(path: Path, logs: Path | None = None) -> StateStore:
    """The store the CLI tests read:

    fix-orders (Running), two date groups of a -> b:
      group 0: 03-01 a1 succeeded, b1 failed; 03-02 a2, b2 pending behind the failed date
      group 1: 03-03 a3 running, b3 pending for it
    clicks (Waiting): c1 waits for its time (tomorrow 02:00), team=web
    old (Deleted): o1 cancelled
    """
    store = open_store(path)
    save(
        store,
        backfill(),
        instance("a1", day=1),
        instance("b1", node="b", day=1, deps=("a1",)),
        instance("a2", day=2, seq=1),
        instance("b2", node="b", day=2, seq=1, deps=("a2",)),
        instance("a3", day=3, group=1),
        instance("b3", node="b", day=3, group=1, deps=("a3",)),
    )
    log = str(logs / "a1.1.log") if logs else None
    attempt(store, "a1", start=T0 - 3600, end=T0 - 3600 + 75, log=log)
    attempt(store, "b1", start=T0 - 3000, end=T0 - 3000 + 5, code=2)
    attempt(store, "a3", start=T0 - 600, log=str(logs / "a3.1.log") if logs else None)
    clicks = backfill(
        "clicks",
        labels={"team": "web"},
        applied_at=T0 - 3 * 86400,
        applied_by=None,
        execution_window=("22:00", "06:00"),
        body={"groups": 1, "order": "descending"},
    )
    save(store, clicks, instance("c1", bf="clicks", node="clicks_hourly", day=20))
    store.set_waiting(
        [("c1", "waiting-for-time", "scheduled at 2024-03-21 02:00 +0800", None)],
        at=T0 - 60,
        actor="controller",
        origin="test",
    )
    save(store, backfill("old", labels={}, applied_at=T0 - 45), instance("o1", bf="old"))
    store.transition(
        ["o1"],
        "cancelled",
        allowed=["pending"],
        at=T0 - 30,
        actor="bob",
        origin="cli",
        reason="backfill deleted by bob",
        kind="delete",
    )
    store.update_backfill(
        "old", at=T0 - 30, actor="bob", origin="cli", event="deleted by bob", status="deleted"
    )
    return store


# -- status words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "counts", "word"),
    [
        ({"status": "deleted", "outcome": "failed"}, {"running": 1}, "Deleted"),
        ({"status": "stopped", "suspended": True}, {"running": 1}, "Stopped"),
        ({"suspended": True, "outcome": "succeeded"}, {"pending": 1}, "Suspended"),
        ({"outcome": "succeeded"}, {"succeeded": 3}, "Succeeded"),
        ({"outcome": "failed"}, {"failed": 1, "pending": 2}, "Failed"),
        ({}, {"running": 1, "waiting-for-time": 2}, "Running"),
        ({}, {"succeeded": 1, "waiting-for-resources": 1, "pending": 1}, "Waiting"),
        ({}, {"waiting-for-time": 1}, "Waiting"),
        ({}, {"pending": 3, "succeeded": 1}, "Pending"),
        ({}, {"frozen": 1, "succeeded": 1}, "Pending"),
        # everything ended, not yet recorded by the controller
        ({}, {"succeeded": 2, "cancelled": 1}, "Succeeded"),
        ({}, {"succeeded": 2, "failed": 1}, "Failed"),
    ],
)
def test_the_status_word_is_the_first_that_holds(
    fields: dict[str, Any], counts: dict[str, int], word: str
) -> None:
    assert progress.phase(backfill(**fields), Counter(counts)) == word


def test_waiting_counts_pending_and_waiting_instances() -> None:
    counts = {"pending": 1, "waiting-for-time": 2, "waiting-for-resources": 3, "frozen": 4}
    assert progress.waiting(counts) == 6


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (10 * 86400, "10d"),
    ],
)
def test_age_is_kubectl_like(seconds: float, text: str) -> None:
    assert progress.age(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.4, "4s"), (75, "1m15s"), (3600 + 300, "1h05m"), (86400 * 3 + 4 * 3600, "3d4h")],
)
def test_duration(seconds: float, text: str) -> None:
    assert progress.duration(seconds) == text


def test_times_and_truncation() -> None:
    assert progress.utc(T0) == "2024-03-20T01:00:00Z"
    assert progress.utc(None) is None
    assert progress.scheduled(instance("x", day=1)) == "2024-03-02 02:00"
    assert progress.truncate("a\nb  c", 10) == "a b c"
    assert progress.truncate("x" * 70, 60) == "x" * 57 + "..."
    assert progress.truncate(None, 60) == ""


# -- progress by date group -------------------------------------------------------------------


def test_date_groups_find_the_current_date_and_what_waits_behind_it() -> None:
    dates = {
        (0, 0, "2024-03-01", "succeeded"): 1,
        (0, 0, "2024-03-01", "failed"): 1,
        (0, 1, "2024-03-02", "pending"): 2,
        (0, 2, "2024-03-03", "pending"): 2,
        (1, 0, "2024-03-04", "succeeded"): 2,
        (1, 1, "2024-03-05", "cancelled"): 1,
        (1, 1, "2024-03-05", "succeeded"): 1,
    }
    g0, g1 = progress.date_groups(dates)

    assert (g0.current, g0.bizdate, g0.position, g0.dates) == (0, "2024-03-01", 1, 3)
    assert (g0.done, g0.instances, g0.at_current) == (1, 6, {"succeeded": 1, "failed": 1})
    assert (g0.later, g0.later_dates, g0.held_by_failure) == (4, 2, True)
    assert (g1.current, g1.bizdate, g1.position, g1.done, g1.later) == (None, None, 2, 4, 0)
    assert progress.blocked([g0, g1], [], []) == [
        "date group 0: 4 instances of 2 later dates wait behind 2024-03-01, which has 1 failed"
    ]


def test_a_running_date_holds_nothing_up() -> None:
    (g,) = progress.date_groups({(0, 0, "d1", "running"): 1, (0, 1, "d2", "pending"): 1})
    assert (g.held_by_failure, g.later) == (False, 1)
    assert progress.blocked([g], [], []) == []


def test_instances_behind_a_failed_or_frozen_dependency_are_blocked() -> None:
    waiting = [
        instance("b", deps=("a",)),
        instance("c", deps=("x",)),
        instance("d", deps=("a",), ignore_deps=True),  # a rerun set: not held
    ]
    assert progress.blocked([], waiting, ["a"]) == [
        "1 instance waits for a failed or frozen dependency"
    ]


# -- why an instance waits ------------------------------------------------------------------------


def why(i: InstanceRecord, *deps: InstanceRecord, **kw: Any) -> str | None:
    record = kw.pop("record", backfill())
    dates = kw.pop("dates", {})
    now = kw.pop("now", T0)
    return progress.why_waiting(i, record, deps, lambda: dates, now)


def test_the_stored_blocker_is_what_get_and_describe_show() -> None:
    """The controller's decision is shown as it stored it, not worked out again: a full
    resource group is known only from it, and its time has come since it looked."""
    busy = Blocker("resources", group="pool", busy=2, slots=2)
    waiting = instance("x", state="waiting-for-resources", reason=busy.text, blocker=busy.to_json())
    assert why(waiting) == progress.reason(waiting) == "resource group pool: 2 of 2 slots busy"
    assert progress.blocker(waiting) == busy
    later = Blocker("scheduled-time", at=T0 - 60, timezone="UTC")
    stale = instance("y", state="waiting-for-time", blocker=later.to_json())
    assert why(stale, now=T0) == "scheduled at 2024-03-20 00:59 +0000"


def test_the_reason_of_an_instance_without_a_blocker_is_its_stored_reason() -> None:
    failed = instance("x", state="failed", reason="exit code 2")
    assert progress.reason(failed) == "exit code 2"
    assert why(failed) is None
    for state in ("running", "succeeded", "cancelled"):
        assert why(instance("x", state=state)) is None


def test_without_a_stored_blocker_the_same_gate_runs_on_the_store() -> None:
    """What the scheduler does not store (a dependency or an earlier date not done; or
    before it first looked) comes from core.gates.decide on the records."""
    b = instance("b1", node="b", deps=("a1",), seq=1)
    dates = {(0, 0, "2024-03-01", "failed"): 1}
    assert why(b, instance("a1", state="running"), dates=dates) == (
        "1 dependency not succeeded: a1 is running"
    )
    assert why(b, instance("a1", state="succeeded"), dates=dates) == (
        "the earlier business date 2024-03-01 of date group 0 (sequence 0) still has 1 "
        "instance not succeeded: 1 failed"
    )
    assert why(b, record=backfill(suspended=True)) == (
        "backfill fix-orders is suspended (spec.suspend): nothing new starts until it is "
        "applied with suspend: false"
    )


def test_dates_are_read_only_when_no_blocker_was_stored() -> None:
    stored = instance("x", blocker={"cause": "backfill-stopped", "backfill": "fix-orders"})

    def no_read() -> dict[tuple[int, int, str, str], int]:
        raise AssertionError("read the dates")

    assert progress.why_waiting(stored, backfill(), [], no_read, T0) == (
        "backfill fix-orders is stopped: nothing new starts until it is resumed "
        "(backfillctl resume backfill/fix-orders) or one of its instances is rerun"
    )


def test_a_missing_backfill_is_said() -> None:
    assert progress.why_waiting(instance("x"), None, [], dict, T0) == (
        "its backfill fix-orders is not in the state store"
    )


def test_nothing_holding_an_instance_back_says_the_controller_starts_it() -> None:
    assert why(instance("x")) == (
        "nothing holds it back: the controller starts it at its next tick (is "
        "backfillctl controller running?)"
    )
    rerun = instance("x", deps=("a",), seq=1, ignore_deps=True)
    dates = {(0, 0, "2024-03-01", "failed"): 1}
    text = why(rerun, instance("a", state="failed"), dates=dates)
    assert text is not None and text.endswith(
        "(dependencies and the date order are ignored: it was rerun as part of a set)"
    )


def test_a_frozen_instance() -> None:
    assert why(instance("x", state="frozen")) == (
        "it is frozen: it does not start, and what depends on it stays blocked "
        "(backfillctl unfreeze x)"
    )


# -- on a real store ----------------------------------------------------------------------------


def test_the_store_gives_progress_by_date(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s.db")

    assert store.date_counts("fix-orders") == {
        (0, 0, "2024-03-01", "succeeded"): 1,
        (0, 0, "2024-03-01", "failed"): 1,
        (0, 1, "2024-03-02", "pending"): 2,
        (1, 0, "2024-03-03", "running"): 1,
        (1, 0, "2024-03-03", "pending"): 1,
    }
    assert store.date_counts("nobody") == {}


def test_why_waiting_from_a_real_store(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s.db")
    (b2,) = store.instances(ids=["b2"])
    record = store.backfill("fix-orders")
    deps = store.instances(ids=b2.depends_on)

    text = progress.why_waiting(b2, record, deps, lambda: store.date_counts("fix-orders"), T0)

    assert text == "1 dependency not succeeded: a2 is pending"
