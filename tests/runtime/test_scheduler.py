"""The scheduler's decisions (DESIGN §7): readiness, barriers, waiting reasons, fairness."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backfill_ctl.core.blocks import blocks_of
from backfill_ctl.core.records import BackfillRecord, InstanceRecord, Run, TaskRow
from backfill_ctl.runtime.scheduler import Decision, Scheduler

T0 = datetime(2024, 3, 20, 1, 0, tzinfo=UTC).timestamp()


def bf(name: str = "bf", **kw: Any) -> BackfillRecord:
    order = kw.pop("order", "ascending")
    return BackfillRecord(name, "d", {"spec": {"order": order}}, **kw)


def inst(
    iid: str,
    *,
    backfill: str = "bf",
    node: str = "a",
    day: int = 1,
    group: int = 0,
    seq: int = 0,
    deps: tuple[str, ...] = (),
    priority: int = 5,
    at: float = T0 - 3600,
    rg: str = "rg",
    dry: str | None = None,
    state: str = "pending",
) -> InstanceRecord:
    return InstanceRecord(
        iid,
        backfill,
        node,
        f"2024-03-{day:02d}",
        "x",
        at,
        "UTC",
        group,
        seq,
        priority,
        deps,
        Run(("true",)),
        rg,
        dry_run_reason=dry,
        state=state,
    )  # type: ignore[arg-type]


def scheduler(
    *instances: InstanceRecord, backfills: tuple[BackfillRecord, ...] = (), capacity: int = 8
) -> Scheduler:
    s = Scheduler({"rg": capacity})
    s.load(backfills or (bf(),), instances)
    return s


def reasons(d: Decision) -> list[tuple[str, str, str | None]]:
    """The waiting instances that changed, with the text of their stored blocker."""
    return [(i, state, reason) for i, state, reason, _ in d.waiting]


def run(s: Scheduler, *ids: str, state: str = "succeeded") -> None:
    for i in ids:
        s.set_state(i, "running")
        s.set_state(i, state)


def test_dependencies_and_the_date_barrier_order_the_starts() -> None:
    s = scheduler(
        inst("a1", day=1, seq=0),
        inst("b1", node="b", day=1, seq=0, deps=("a1",)),
        inst("a2", day=2, seq=1),
        inst("b2", node="b", day=2, seq=1, deps=("a2",)),
    )
    assert s.decide(T0).start == ["a1"]
    run(s, "a1")
    assert s.decide(T0).start == ["b1"]
    run(s, "b1")  # the whole first date succeeded: the second may start
    assert s.decide(T0).start == ["a2"]


def test_groups_run_in_parallel_and_a_failure_blocks_only_its_group() -> None:
    s = scheduler(
        inst("g0d1", day=1, group=0, seq=0),
        inst("g0d2", day=2, group=0, seq=1),
        inst("g1d3", day=3, group=1, seq=0),
        inst("g1d4", day=4, group=1, seq=1),
    )
    assert s.decide(T0).start == ["g0d1", "g1d3"]
    run(s, "g0d1", state="failed")
    run(s, "g1d3")
    assert s.decide(T0).start == ["g1d4"]  # group 0 waits behind its failed date
    s.set_state("g1d4", "running")
    s.set_state("g0d1", "pending")  # rerun
    assert s.decide(T0).start == ["g0d1"]
    run(s, "g0d1")
    assert s.decide(T0).start == ["g0d2"]


def test_future_instances_wait_for_their_time_unless_run_immediately() -> None:
    later = T0 + 3600
    s = scheduler(inst("x", at=later))
    d = s.decide(T0)
    assert d.start == [] and d.waiting == [
        (
            "x",
            "waiting-for-time",
            "scheduled at 2024-03-20 02:00 +0000",
            {"cause": "scheduled-time", "at": later, "timezone": "UTC"},
        )
    ]
    assert s.decide(later).start == ["x"]
    eager = scheduler(inst("x", at=later), backfills=(bf(run_immediately=True),))
    assert eager.decide(T0).start == ["x"]


def test_a_full_resource_group_makes_the_rest_wait_for_resources() -> None:
    s = scheduler(inst("a", node="a"), inst("b", node="b"), inst("c", node="c"), capacity=2)
    d = s.decide(T0)
    assert d.start == ["a", "b"]
    assert d.waiting == [
        (
            "c",
            "waiting-for-resources",
            "resource group rg: 2 of 2 slots busy",
            {"cause": "resources", "group": "rg", "busy": 2, "slots": 2},
        )
    ]
    for i in d.start:
        s.set_state(i, "running")
    assert s.decide(T0).waiting == []  # unchanged: nothing new to write


def test_priority_then_business_date_then_time_inside_a_backfill() -> None:
    s = scheduler(
        inst("low", priority=2, day=1),
        inst("high-late", priority=8, day=3, group=1),
        inst("high-early", priority=8, day=2, group=2),
        capacity=2,
    )
    assert s.decide(T0).start == ["high-early", "high-late"]
    desc = scheduler(
        inst("d1", day=1),
        inst("d2", day=2, group=1),
        capacity=1,
        backfills=(bf(order="descending"),),
    )
    assert desc.decide(T0).start == ["d2"]


def test_slots_are_shared_fairly_between_backfills() -> None:
    many = [inst(f"a{n}", backfill="big", node=f"n{n}", priority=8) for n in range(5)]
    s = scheduler(
        *many,
        inst("b0", backfill="small", priority=1),
        capacity=2,
        backfills=(bf("big"), bf("small")),
    )
    assert sorted(s.decide(T0).start) == ["a0", "b0"]


def test_dry_runs_need_no_slot() -> None:
    s = scheduler(inst("dry", dry="blocklisted"), inst("real", node="b"), capacity=1)
    s.set_state("real", "running")
    d = s.decide(T0)
    assert (d.dry_runs, d.start) == (["dry"], [])


def test_a_closed_execution_window_or_a_suspended_backfill_keeps_instances_pending() -> None:
    night = scheduler(inst("x"), backfills=(bf(execution_window=("22:00", "06:00")),))
    noon = T0 + 11 * 3600  # 12:00 UTC
    assert reasons(night.decide(noon)) == [
        ("x", "pending", "outside the execution window 22:00-06:00 in UTC")
    ]
    assert night.decide(noon + 11 * 3600).start == ["x"]  # 23:00 UTC
    paused = scheduler(inst("x"), backfills=(bf(suspended=True),))
    assert paused.decide(T0).waiting == [
        (
            "x",
            "pending",
            "backfill bf is suspended (spec.suspend): nothing new starts until it is applied "
            "with suspend: false",
            {"cause": "backfill-suspended", "backfill": "bf"},
        )
    ]
    stopped = scheduler(inst("x"), backfills=(bf(status="stopped", suspended=True),))
    assert [b and b["cause"] for *_, b in stopped.decide(T0).waiting] == ["backfill-stopped"]


def test_a_retry_waits_for_its_delay_and_a_blocker_is_written_once() -> None:
    s = scheduler(inst("x"))
    s.set_state("x", "running")
    s.set_state("x", "pending", "exit code 1", not_before=T0 + 90)
    assert s.decide(T0).waiting == [
        (
            "x",
            "waiting-for-time",
            "retrying at 2024-03-20 01:01:30 +0000",
            {"cause": "retry-delay", "at": T0 + 90, "timezone": "UTC"},
        )
    ]
    assert s.decide(T0 + 30).waiting == []  # the same blocker: nothing to write
    assert s.decide(T0 + 90).start == ["x"]


def test_a_loaded_instance_whose_stored_reason_reads_the_same_is_not_rewritten() -> None:
    s = scheduler(inst("x", at=T0 + 3600, state="waiting-for-time"))
    s.tasks["x"].reason = "scheduled at 2024-03-20 02:00 +0000"
    assert s.decide(T0).waiting == []


def test_a_rerun_set_ignores_its_mutual_dependencies() -> None:
    s = scheduler(inst("a"), inst("b", node="b", deps=("a",)))
    run(s, "a")
    run(s, "b")
    s.set_state("a", "pending", ignore_deps=True)
    s.set_state("b", "pending", ignore_deps=True)
    assert s.decide(T0).start == ["a", "b"]


def test_a_cancelled_dependency_holds_nobody_back() -> None:
    s = scheduler(inst("a"), inst("b", node="b", deps=("a",)))
    s.set_state("a", "cancelled")
    assert s.decide(T0).start == ["b"]


def test_a_backfill_is_finished_when_nothing_runs_or_can_start() -> None:
    s = scheduler(inst("a1", day=1, seq=0), inst("a2", day=2, seq=1))
    assert s.finished() == []
    run(s, "a1", state="failed")
    assert s.finished() == ["bf"]  # stuck behind the failed date
    assert not s.gates["bf"].succeeded
    s.set_state("a1", "pending")
    run(s, "a1")
    assert s.finished() == []
    run(s, "a2")
    assert s.finished() == ["bf"] and s.gates["bf"].succeeded


def test_instances_loaded_in_any_order_count_their_dependencies() -> None:
    s = scheduler(inst("b", node="b", deps=("a",)), inst("a"))
    assert s.decide(T0).start == ["a"]
    assert s.tasks["b"].unmet == 1


def test_a_dependency_the_load_did_not_give_holds_nobody_back_until_it_comes() -> None:
    """Rows (or a store's blocks of them) naming a dependency not among them: it gets a
    slot of its own, not loaded, met; its row, upserted later, holds its dependents."""
    rows = [inst("a"), inst("b", node="b", deps=("a", "x"))]
    for given in (rows, blocks_of(TaskRow.of(i) for i in rows)):
        s = Scheduler({"rg": 8})
        s.load((bf(),), given)
        assert sorted(s.tasks) == ["a", "b"] and s.tasks["b"].deps == ("a", "x")
        assert s.tasks["b"].unmet == 1
        s.upsert(inst("x", node="x"))
        assert s.tasks["b"].unmet == 2 and sorted(s.tasks) == ["a", "b", "x"]


def test_replacing_an_instance_keeps_the_counts_right() -> None:
    s = scheduler(inst("a"), inst("b", node="b", deps=("a",)))
    s.upsert(inst("b", node="b", deps=()))  # apply dropped the dependency
    assert sorted(s.decide(T0).start) == ["a", "b"]
    assert s.gates["bf"].counts["pending"] == 2


def test_replacing_a_waiting_instance_counts_it_once() -> None:
    """An instance the scheduler set waiting (for its time), replaced by its stored row
    (an operator's change): counted once, in the row's state; its old state was taken
    off twice (once leaving the eligible set), and the backfill's counts drifted."""
    later = T0 + 3600
    s = scheduler(inst("x", at=later), inst("y", node="b", at=later))
    assert {w[1] for w in s.decide(T0).waiting} == {"waiting-for-time"}
    s.upsert(inst("x", at=later, state="waiting-for-time"))
    counts = {k: v for k, v in s.gates["bf"].counts.items() if v}
    assert counts == {"waiting-for-time": 2}
    s.upsert(inst("x", at=later, state="pending"))
    assert {k: v for k, v in s.gates["bf"].counts.items() if v} == {
        "pending": 1,
        "waiting-for-time": 1,
    }


def test_an_instance_that_stops_being_ready_goes_back_to_plain_pending() -> None:
    s = scheduler(inst("a"), inst("b", node="b", deps=("a",)), capacity=1)
    run(s, "a")
    s._running["rg"] = 1  # another backfill holds the only slot
    assert reasons(s.decide(T0)) == [
        ("b", "waiting-for-resources", "resource group rg: 1 of 1 slots busy")
    ]
    s.set_state("a", "pending")  # a is rerun: b waits for it again, not for a slot
    assert reasons(s.decide(T0)) == [
        ("b", "pending", None),
        ("a", "waiting-for-resources", "resource group rg: 1 of 1 slots busy"),
    ]
    counts = {k: v for k, v in s.gates["bf"].counts.items() if v}
    assert counts == {"pending": 1, "waiting-for-resources": 1}  # b, a: exact by state
