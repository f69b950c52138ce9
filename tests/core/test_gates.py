"""Why an instance waits (backfill_ctl.core.gates): each cause, in the gate's order, its one
text, the execution window across midnight, and the JSON the store keeps."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backfill_ctl.core import gates
from backfill_ctl.core.gates import BackfillGate, Blocker, Clock, gate
from backfill_ctl.core.records import BackfillRecord, InstanceRecord, Run
from backfill_ctl.spec.model import TimeWindow

T0 = datetime(2024, 3, 20, 1, 0, tzinfo=UTC).timestamp()  # 09:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def backfill(**kw: Any) -> BackfillRecord:
    return BackfillRecord("fix-orders", "d", {"spec": {}}, **kw)


def instance(iid: str = "x", *, day: int = 1, seq: int = 0, **kw: Any) -> InstanceRecord:
    """Business date 2024-03-DAY, scheduled 02:00 on the next day in Shanghai."""
    at = datetime(2024, 3, day + 1, 2, 0, tzinfo=SHANGHAI)
    fields: dict[str, Any] = {
        "id": iid,
        "backfill": "fix-orders",
        "node": kw.pop("node", "a"),
        "bizdate": f"2024-03-{day:02d}",
        "cyctime": at.isoformat(),
        "cyctime_epoch": at.timestamp(),
        "timezone": "Asia/Shanghai",
        "group": 0,
        "sequence": seq,
        "priority": 5,
        "depends_on": kw.pop("deps", ()),
        "run": Run(("true",)),
        "resource_group": "pool",
        **kw,
    }
    return InstanceRecord(**fields)


def decide(i: InstanceRecord, *deps: InstanceRecord, **kw: Any) -> Blocker | None:
    return gates.decide(
        i, kw.get("record", backfill()), deps, kw.get("dates", {}), kw.get("now", T0)
    )


@pytest.mark.parametrize(
    ("fields", "cause", "text"),
    [
        (
            {"status": "stopped"},
            "backfill-stopped",
            "backfill fix-orders is stopped: nothing new starts until it is resumed "
            "(backfillctl resume backfill/fix-orders) or one of its instances is rerun",
        ),
        (
            {"status": "deleted"},
            "backfill-deleted",
            "backfill fix-orders is deleted: apply its spec again to bring it back",
        ),
        (
            {"suspended": True},
            "backfill-suspended",
            "backfill fix-orders is suspended (spec.suspend): nothing new starts until it "
            "is applied with suspend: false",
        ),
    ],
)
def test_a_closed_backfill_holds_every_instance_back_first(
    fields: dict[str, Any], cause: str, text: str
) -> None:
    record = backfill(execution_window=("22:00", "06:00"), **fields)
    b = decide(instance(deps=("a",)), instance("a", state="failed"), record=record)
    assert b is not None and (b.cause, b.text, b.state) == (cause, text, "pending")


def test_upstream_dependencies_not_done_with_what_to_do_about_them() -> None:
    deps = [
        instance("a1", state="running"),
        instance("f1", state="failed"),
        instance("z1", state="frozen"),
        instance("s1", state="succeeded"),
        instance("c1", state="cancelled"),
    ]
    x = instance(deps=("a1", "f1", "z1", "s1", "c1", "not-stored"))
    b = decide(x, *deps)
    assert b == Blocker(
        "upstream", dependencies=(("a1", "running"), ("f1", "failed"), ("z1", "frozen"))
    )
    assert b.text == (
        "3 dependencies not succeeded: a1 is running, f1 is failed (rerun or set-success it), "
        "z1 is frozen (unfreeze it)"
    )
    assert decide(replace(x, ignore_deps=True), *deps) is None  # a rerun set ignores them


def test_many_upstream_dependencies_are_cut_short() -> None:
    many = Blocker("upstream", dependencies=tuple((f"d{n:02d}", "pending") for n in range(13)))
    assert many.text.startswith("13 dependencies not succeeded: d00 is pending, d01 is pending")
    assert many.text.endswith("d09 is pending, and 3 more")
    assert Blocker("upstream", dependencies=(("a", "running"),)).text == (
        "1 dependency not succeeded: a is running"
    )


def test_the_barrier_is_the_earliest_date_of_the_group_not_done() -> None:
    dates = {
        (0, 0, "2024-03-01", "succeeded"): 3,
        (0, 1, "2024-03-02", "failed"): 1,
        (0, 1, "2024-03-02", "running"): 2,
        (0, 2, "2024-03-03", "pending"): 1,
        (1, 0, "2024-03-04", "failed"): 1,  # another group: no barrier for ours
    }
    b = decide(instance(day=20, seq=2), dates=dates)
    assert b is not None and b.cause == "barrier"  # before its scheduled time
    assert b.text == (
        "the earlier business date 2024-03-02 of date group 0 (sequence 1) still has 3 "
        "instances not succeeded: 2 running, 1 failed"
    )
    assert decide(instance(day=2, seq=1), dates=dates) is None


def test_the_scheduled_time_unless_run_immediately() -> None:
    later = instance(day=20)  # 2024-03-21 02:00 +08:00
    b = decide(later)
    assert b == Blocker("scheduled-time", at=later.cyctime_epoch, timezone="Asia/Shanghai")
    assert (b.text, b.state) == ("scheduled at 2024-03-21 02:00 +0800", "waiting-for-time")
    assert decide(later, record=backfill(run_immediately=True)) is None
    assert decide(later, now=later.cyctime_epoch) is None


def test_a_retry_waits_for_its_delay() -> None:
    retrying = instance(not_before=T0 + 90)
    b = decide(retrying)
    assert b is not None and (b.cause, b.state) == ("retry-delay", "waiting-for-time")
    assert b.text == "retrying at 2024-03-20 09:01:30 +0800"
    assert decide(retrying, now=T0 + 90) is None


@pytest.mark.parametrize(
    ("opens", "closes", "inside", "outside"),
    [
        ("22:00", "06:00", ["22:00", "23:59", "00:00", "06:00"], ["06:01", "12:00", "21:59"]),
        ("09:00", "17:00", ["09:00", "12:00", "17:00"], ["08:59", "17:01", "00:00"]),
    ],
)
def test_the_execution_window_is_inclusive_and_may_cross_midnight(
    opens: str, closes: str, inside: list[str], outside: list[str]
) -> None:
    rules = BackfillGate.of(backfill(execution_window=(opens, closes)))
    assert rules.window == TimeWindow(time.fromisoformat(opens), time.fromisoformat(closes))
    day = datetime(2024, 3, 20, tzinfo=UTC)

    def at(hhmm: str) -> Blocker | None:
        clock = Clock(day.replace(hour=int(hhmm[:2]), minute=int(hhmm[3:]), second=42).timestamp())
        return gate(rules, 0.0, "UTC", None, clock)

    assert [t for t in inside if at(t) is not None] == []
    blocked = [at(t) for t in outside]
    assert {b.text for b in blocked if b} == {
        f"outside the execution window {opens}-{closes} in UTC"
    }
    assert len([b for b in blocked if b]) == len(outside)


def test_the_execution_window_is_read_on_the_nodes_clock() -> None:
    night = backfill(execution_window=("22:00", "06:00"))
    b = decide(instance(), record=night)  # 09:00 in Shanghai
    assert b == Blocker("execution-window", opens="22:00", closes="06:00", timezone="Asia/Shanghai")
    assert b.state == "pending"
    assert decide(instance(), record=night, now=T0 + 14 * 3600) is None  # 23:00 there


def cause(b: Blocker | None) -> str | None:
    return None if b is None else b.cause


def test_resources_and_the_order_of_causes() -> None:
    busy = gates.resources("pool", 2, 2)
    assert (busy.text, busy.state) == (
        "resource group pool: 2 of 2 slots busy",
        "waiting-for-resources",
    )
    # the first rule that holds wins: closed, held, time, retry, window
    rules = BackfillGate.of(backfill(execution_window=("09:00", "17:00")))  # 01:00 UTC now
    held = Blocker("upstream", dependencies=(("a", "running"),))
    clock = Clock(T0)
    assert gate(rules, T0 + 60, "UTC", T0 + 90, clock, held) is held
    assert cause(gate(rules, T0 + 60, "UTC", T0 + 90, clock)) == "scheduled-time"
    assert cause(gate(rules, T0, "UTC", T0 + 90, clock)) == "retry-delay"
    assert cause(gate(rules, T0, "UTC", None, clock)) == "execution-window"


ALL = [
    Blocker("backfill-stopped", backfill="b"),
    Blocker("backfill-suspended", backfill="b"),
    Blocker("backfill-deleted", backfill="b"),
    Blocker("upstream", dependencies=(("a", "running"), ("f", "failed"))),
    Blocker("barrier", date_group=1, sequence=3, bizdate="2024-03-02", left=(("failed", 1),)),
    Blocker("scheduled-time", at=T0, timezone="Asia/Shanghai"),
    Blocker("retry-delay", at=T0 + 0.5, timezone="UTC"),
    Blocker("execution-window", opens="22:00", closes="06:00", timezone="UTC"),
    Blocker("resources", group="pool", busy=2, slots=2),
]


def test_every_cause_is_covered() -> None:
    assert sorted(b.cause for b in ALL) == sorted(gates.CAUSES)


@pytest.mark.parametrize("blocker", ALL, ids=lambda b: b.cause)
def test_json_round_trip(blocker: Blocker) -> None:
    data = json.loads(json.dumps(blocker.to_json()))  # as the store keeps it
    assert data["cause"] == blocker.cause
    assert Blocker.from_json(data) == blocker
    assert Blocker.from_json(data).text == blocker.text


def test_json_keeps_only_the_details_of_its_cause() -> None:
    assert gates.resources("pool", 1, 2).to_json() == {
        "cause": "resources",
        "group": "pool",
        "busy": 1,
        "slots": 2,
    }
    assert ALL[4].to_json() == {
        "cause": "barrier",
        "date_group": 1,
        "sequence": 3,
        "bizdate": "2024-03-02",
        "left": {"failed": 1},
    }
    with pytest.raises(ValueError, match="unknown blocker cause"):
        Blocker.from_json({"cause": "gremlins"})
