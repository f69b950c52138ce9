"""What every state store must do: the contract of `StateStore` (DESIGN §7).

A store's test module subclasses `StoreContract` as `Test...`, provides the `make`
fixture (`make()` gives a new, empty store). Each test here works through the
protocol only, so a new store (PostgreSQL) passes the same suite; what is one store's
own (files, modes, WAL, migrations, a full disk, locks between processes) is tested in
its own module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from backfill_ctl.core.records import (
    BackfillRecord,
    DateSpan,
    InstanceRecord,
    Run,
    TaskRow,
    TaskTuple,
)
from backfill_ctl.state import LeaseLost, StateStore, StoreConflict
from backfill_ctl.state.protocols import AttemptEnd, Begun, StoredLog

Make = Callable[[], StateStore]
AT = 1_710_896_400.0  # 2024-03-20T01:00:00Z
WHO: dict[str, Any] = {"actor": "t", "origin": "test"}


def backfill(name: str = "bf", **fields: Any) -> BackfillRecord:
    return BackfillRecord(
        name=name,
        digest="sha256:" + "ab" * 32,
        spec={"kind": "Backfill", "metadata": {"name": name}, "access": {"owners": ["ann"]}},
        file="specs.yaml",
        execution_window=("22:00", "06:00"),
        notify=({"type": "webhook", "url": "http://x"},),
        labels={"team": "web"},
        applied_at=AT,
        applied_by="ann",
        **fields,
    )


def instance(
    ident: str,
    node: str = "a",
    *,
    backfill: str = "bf",
    day: int = 1,
    group: int = 0,
    deps: tuple[str, ...] = (),
    **fields: Any,
) -> InstanceRecord:
    values: dict[str, Any] = {
        "bizdate": f"2024-03-{day:02d}",
        "cyctime": f"2024-03-{day + 1:02d}T02:00:00+00:00",
        "cyctime_epoch": AT + day * 86400,
        "timezone": "UTC",
        "sequence": day,
        "priority": 0,
        "run": Run(("run", node), env={"BIZDATE": str(day)}, retries=1),
        "resource_group": "rg",
        "tries_left": 2,
        "created_at": AT,
        "updated_at": AT,
        **fields,
    }
    return InstanceRecord(
        id=ident, backfill=backfill, node=node, group=group, depends_on=deps, **values
    )


def seeded(store: StateStore) -> StateStore:
    """bf: a1 -> b1 on day 1, a2 on day 2 (group 1); other: o1."""
    store.save_apply(
        [backfill(), backfill("other")],
        [
            instance("a1"),
            instance("b1", "b", deps=("a1",)),
            instance("a2", day=2, group=1),
            instance("o1", backfill="other"),
        ],
        [],
        [],
        at=AT,
        resource_groups=[("rg", "shared", 2)],
        **WHO,
    )
    return store


def state(store: StateStore, ident: str) -> InstanceRecord:
    (found,) = store.instances(ids=[ident])
    return found


def start(store: StateStore, ident: str, at: float = AT) -> int:
    number = store.begin_attempt(ident, "local", at=at, **WHO)
    assert number is not None
    return number


def end(store: StateStore, ident: str, number: int, outcome: str = "succeeded", **kw: Any) -> bool:
    """Report attempt `number` of `ident` ended with `outcome` (also its instance's, unless
    `instance_state` says otherwise), at AT + 10."""
    fields: dict[str, Any] = {"instance_state": outcome, "at": AT + 10, **WHO, **kw}
    return store.end_attempt(
        ident,
        number,
        attempt_state=outcome,
        exit_code=0 if outcome == "succeeded" else 1,
        message=None if outcome == "succeeded" else "exit code 1",
        **fields,
    )


class StoreContract:
    # -- identity ------------------------------------------------------------------

    def test_a_store_has_a_path_and_a_random_identity(self, make: Make) -> None:
        first, second = make(), make()
        assert isinstance(first.path, str) and first.path
        assert len(first.store_id) == 12 and int(first.store_id, 16) >= 0
        assert first.store_id == first.store_id
        assert second.store_id != first.store_id
        first.close()

    # -- apply -----------------------------------------------------------------------

    def test_apply_saves_backfills_instances_and_resource_groups_as_given(self, make: Make) -> None:
        store = seeded(make())
        assert store.backfill("bf") == backfill()
        assert store.backfill("none") is None
        assert [b.name for b in store.backfills()] == ["bf", "other"]
        assert store.instances(ids=["b1"]) == [instance("b1", "b", deps=("a1",))]
        assert store.resource_groups() == {"rg": ("shared", 2)}
        assert [(e.kind, e.backfill, e.instance, e.to_state) for e in store.events()] == [
            ("created", "bf", "a1", "pending"),
            ("created", "bf", "b1", "pending"),
            ("created", "bf", "a2", "pending"),
            ("created", "other", "o1", "pending"),
            ("applied", "bf", None, None),
            ("applied", "other", None, None),
        ]
        assert store.events()[-1].message == "applied " + backfill().digest[:19]
        assert {(e.at, e.actor, e.origin) for e in store.events()} == {(AT, "t", "test")}

    def test_a_new_apply_updates_what_may_change_and_cancels_what_has_not_started(
        self, make: Make
    ) -> None:
        store = seeded(make())
        store.update_backfill("bf", at=AT, finished_at=AT + 1, outcome="failed", **WHO)
        start(store, "a1")
        store.transition(["a2"], "cancelled", allowed=["pending"], at=AT, **WHO)
        changed = {"priority": 7, "tries_left": 5, "run": Run(("new",))}
        updates = [
            instance(i, deps=d, day=y, **changed)
            for i, d, y in (("a1", (), 1), ("a2", (), 2), ("b1", ("a1",), 1))
        ]
        before = store.last_event_id()

        store.save_apply(
            [backfill()],
            [],
            updates,
            ["a1", "b1", "o1"],
            at=AT + 5,
            resource_groups=[("rg", "exclusive", 1)],
            **WHO,
        )

        a1, a2, b1 = state(store, "a1"), state(store, "a2"), state(store, "b1")
        assert (a1.state, a1.priority) == ("running", 0)  # started: neither changed nor cancelled
        assert (a2.state, a2.priority, a2.tries_left, a2.run) == ("pending", 7, 5, Run(("new",)))
        assert (b1.state, b1.reason, b1.finished_at) == (
            "cancelled",
            "no longer in the specs",
            AT + 5,
        )
        assert b1.priority == 7  # updated first, then cancelled
        assert state(store, "o1").state == "cancelled"
        record = store.backfill("bf")
        assert record is not None and (record.finished_at, record.outcome) == (None, None)
        assert store.resource_groups() == {"rg": ("exclusive", 1)}
        events = [
            (e.kind, e.backfill, e.instance, e.from_state, e.to_state)
            for e in store.events(after=before)
        ]
        assert events == [
            ("updated", "bf", "a1", None, None),
            ("transition", "bf", "a2", "cancelled", "pending"),
            ("updated", "bf", "b1", None, None),
            # a1 had started: it was not cancelled, so no event says it was
            ("transition", "bf", "b1", "pending", "cancelled"),
            ("transition", "other", "o1", "pending", "cancelled"),
            ("applied", "bf", None, None, None),
        ]

    def test_apply_cancels_only_what_has_not_started_each_event_with_its_state_before(
        self, make: Make
    ) -> None:
        """An event is a transition that happened: a started or finished instance asked
        to be cancelled is kept and gets none, nor does an id the store does not hold;
        each cancelled one's event says the state it left."""
        store = seeded(make())
        store.save_apply([], [instance("a3", day=3)], [], [], at=AT, **WHO)
        store.set_waiting([("a2", "waiting-for-time", "at 02:00", None)], at=AT, **WHO)
        store.transition(["b1"], "frozen", allowed=["pending"], at=AT, **WHO)
        start(store, "a1")
        end(store, "o1", start(store, "o1"))
        before = store.last_event_id()

        cancelled = store.save_apply(
            [], [], [], ["a1", "b1", "a2", "a3", "o1", "zz"], at=AT + 5, **WHO
        )

        assert cancelled == ["b1", "a2", "a3"]  # what moved, in the order asked

        assert {i.id: i.state for i in store.instances()} == {
            "a1": "running",
            "b1": "cancelled",
            "a2": "cancelled",
            "a3": "cancelled",
            "o1": "succeeded",
        }
        trail = [
            (e.kind, e.backfill, e.instance, e.from_state, e.to_state, e.message, e.at)
            for e in store.events(after=before)
        ]
        gone = ("no longer in the specs", AT + 5)
        assert trail == [
            ("transition", "bf", "b1", "frozen", "cancelled", *gone),
            ("transition", "bf", "a2", "waiting-for-time", "cancelled", *gone),
            ("transition", "bf", "a3", "pending", "cancelled", *gone),
        ]

    def test_a_cancelled_instance_applied_again_is_pending_afresh_with_its_transition(
        self, make: Make
    ) -> None:
        """A delete (or --prune) cancelled it; an apply that wants it again brings it back
        as a transition by the apply's actor, with nothing left of its cancellation."""
        store = seeded(make())
        store.transition(
            ["a1", "a2"],
            "cancelled",
            allowed=["pending"],
            at=AT,
            actor="root",
            origin="cli",
            reason="backfill deleted by root",
            kind="delete",
            finished_at=AT,
        )
        before = store.last_event_id()

        store.save_apply(
            [backfill()],
            [],
            [instance("a1"), instance("a2", day=2, group=1)],
            [],
            at=AT + 5,
            actor="ann",
            origin="apply",
        )

        for ident in ("a1", "a2"):
            back = state(store, ident)
            assert (back.state, back.reason, back.blocker, back.finished_at, back.updated_at) == (
                "pending",
                None,
                None,
                None,
                AT + 5,
            )
        trail = [
            (e.kind, e.instance, e.from_state, e.to_state, e.message, e.actor, e.origin, e.at)
            for e in store.events(after=before)
        ]
        back_by = ("cancelled", "pending", "brought back by apply", "ann", "apply", AT + 5)
        assert trail == [
            ("transition", "a1", *back_by),
            ("transition", "a2", *back_by),
            (
                "applied",
                None,
                None,
                None,
                "applied " + backfill().digest[:19],
                "ann",
                "apply",
                AT + 5,
            ),
        ]

    def test_an_apply_that_is_refused_leaves_nothing_behind(self, make: Make) -> None:
        store = seeded(make())
        events = store.last_event_id()
        with pytest.raises(StoreConflict):  # an instance created twice
            store.save_apply(
                [backfill("new")], [instance("n1"), instance("n1")], [], [], at=AT, **WHO
            )
        with pytest.raises(StoreConflict):  # an instance that is already stored
            store.save_apply([backfill("new")], [instance("a1")], [], [], at=AT, **WHO)
        assert store.backfill("new") is None
        assert store.instances(ids=["n1"]) == []
        assert store.last_event_id() == events

    def test_the_news_are_the_events_others_wrote_and_the_newest_id(self, make: Make) -> None:
        """What a controller reads each tick: the events after its watermark that others
        wrote (one with no origin too), and the newest id, its own included, so that the
        next read starts past them."""
        store = seeded(make())
        start = store.last_event_id()
        assert store.news(start, "me") == ([], start)

        def note(origin: str | None, message: str) -> None:
            store.add_events("note", [(None, message)], at=AT, actor="t", origin=origin)  # type: ignore[arg-type]

        note("me", "mine 1")
        note("them", "theirs 1")
        note(None, "nobody's")
        note("me", "mine 2")
        news, newest = store.news(start, "me")
        assert [(e.message, e.origin) for e in news] == [
            ("theirs 1", "them"),
            ("nobody's", None),
        ]
        assert newest == store.last_event_id()  # past "mine 2", which came last
        assert store.news(newest, "me") == ([], newest)
        note("me", "mine 3")
        assert store.news(newest, "me") == ([], store.last_event_id())
        note("them", "theirs 2")
        note("me", "mine 4")
        news, after = store.news(store.last_event_id() - 2, "me")
        assert [e.message for e in news] == ["theirs 2"] and after == store.last_event_id()
        assert [e.message for e in store.news(start, "them")[0]] == [
            "mine 1",
            "nobody's",
            "mine 2",
            "mine 3",
            "mine 4",
        ]

    # -- backfills -------------------------------------------------------------------

    def test_a_backfill_s_fields_change_with_an_event_and_only_known_ones(self, make: Make) -> None:
        store = seeded(make())
        spec = {"kind": "Backfill", "rewritten": True}
        assert store.update_backfill(
            "bf",
            at=AT + 1,
            event="stopped by ann",
            status="stopped",
            suspended=True,
            spec=spec,
            **WHO,
        )
        record = store.backfill("bf")
        assert record is not None
        assert (record.status, record.suspended, record.spec) == ("stopped", True, spec)
        last = store.events()[-1]
        assert (last.kind, last.backfill, last.message, last.at) == (
            "backfill",
            "bf",
            "stopped by ann",
            AT + 1,
        )
        events = store.last_event_id()
        assert store.update_backfill("bf", at=AT, event="alert failed", **WHO)  # event only
        assert store.events()[-1].message == "alert failed"
        assert store.update_backfill("bf", at=AT, notified_at=AT, **WHO)  # no event
        assert store.last_event_id() == events + 1
        assert not store.update_backfill("none", at=AT, event="x", status="stopped", **WHO)
        assert store.last_event_id() == events + 1
        with pytest.raises(ValueError, match="cannot set"):
            store.update_backfill("bf", at=AT, labels={}, **WHO)

    def test_a_deleted_backfill_is_listed_only_when_asked(self, make: Make) -> None:
        store = seeded(make())
        store.update_backfill("other", at=AT, status="deleted", **WHO)
        assert [b.name for b in store.backfills()] == ["bf"]
        assert [b.name for b in store.backfills(include_deleted=True)] == ["bf", "other"]

    # -- instances -------------------------------------------------------------------

    def test_instances_are_found_by_backfill_id_state_node_and_date_in_plan_order(
        self, make: Make
    ) -> None:
        store = seeded(make())
        store.transition(["a2"], "frozen", allowed=["pending"], at=AT, **WHO)
        assert [i.id for i in store.instances()] == ["a1", "b1", "a2", "o1"]
        assert [i.id for i in store.instances(backfill="bf")] == ["a1", "b1", "a2"]
        assert [i.id for i in store.instances(ids=["a2", "o1", "zz"])] == ["a2", "o1"]
        assert store.instances(ids=[]) == [] and store.instances(states=[]) == []
        assert [i.id for i in store.instances(states=["frozen"])] == ["a2"]
        assert [i.id for i in store.instances(node="a", bizdate="2024-03-01")] == ["a1", "o1"]
        assert [i.id for i in store.instances(backfill="bf", states=iter(["pending"]))] == [
            "a1",
            "b1",
        ]

    def test_counts_and_the_scheduler_s_rows(self, make: Make) -> None:
        store = seeded(make())
        store.transition(["a1"], "failed", allowed=["pending"], at=AT, **WHO)
        assert store.counts() == {
            ("bf", "failed"): 1,
            ("bf", "pending"): 2,
            ("other", "pending"): 1,
        }
        assert store.counts("other") == {("other", "pending"): 1}
        assert store.date_counts("bf") == {
            (0, 1, "2024-03-01", "failed"): 1,
            (0, 1, "2024-03-01", "pending"): 1,
            (1, 2, "2024-03-02", "pending"): 1,
        }
        assert store.month_counts("bf") == {
            ("a", "2024-03", "failed", False, False): (1, "a1"),
            ("b", "2024-03", "pending", False, False): (1, "b1"),
            ("a", "2024-03", "pending", False, False): (1, "a2"),  # another date group
        }
        store.transition(["a2"], "failed", allowed=["pending"], at=AT, **WHO)
        store.transition(["a1"], "pending", allowed=["failed"], at=AT, **WHO)
        behind = store.month_counts("bf")  # a2 failed in group 1; group 0 is not behind it
        assert behind[("a", "2024-03", "pending", False, False)] == (1, "a1")
        # flags as truth values, no dependencies as None or (): the driver's row as is
        rows = sorted(
            TaskRow(*r[:9], bool(r[9]), tuple(r[10] or ()), bool(r[11]), *r[12:])
            for r in store.task_rows(["bf"])
        )
        assert rows == sorted(TaskRow.of(i) for i in store.instances(backfill="bf"))
        assert list(store.task_rows([])) == []

    def test_the_scheduler_s_blocks_are_its_rows_a_date_at_a_time(self, make: Make) -> None:
        """task_blocks (the controller's load): the rows of task_rows, a block per date
        of a backfill; a column a date's instances share as one value, else a list; what
        few have (dependencies, a reason, a retry's time, flags) as it is; doubles exact;
        values with the commas and quotes that join them."""
        store = make()
        odd = AT + 86400 + 0.1 + 0.2  # digits that a text of 15 would lose
        day1 = [
            instance("a1", cyctime_epoch=odd, priority=-3, timezone="Europe/Paris"),
            instance("b1", "b", deps=("a1",), dry_run_reason="dry-run: b", ignore_deps=True),
            instance("c1", "c", deps=("a1", "b1"), resource_group="gpu", not_before=odd + 1e-6),
        ]
        others = [
            instance(f"o{n}", f"n{n}", backfill="other", deps=("o0",), resource_group="x,y")
            for n in (1, 2)
        ]
        store.save_apply(
            [backfill(), backfill("other")],
            [
                *day1,
                instance("a2", day=2),
                instance("b2", "b", day=2),
                *others,
                instance("o0", backfill="other", day=2),
            ],
            [],
            [],
            at=AT,
            resource_groups=[("rg", "shared", 2), ("gpu", "shared", 1), ("x,y", "shared", 1)],
            **WHO,
        )
        why = 'a "why",\n'
        store.transition(
            ["a2", "o1", "o2"], "failed", allowed=["pending"], at=AT, reason=why, **WHO
        )
        blocks = sorted(store.task_blocks(["bf", "other"]), key=lambda b: (b.backfill, b.bizdate))
        assert [(b.backfill, b.bizdate, b.group, b.sequence) for b in blocks] == [
            ("bf", "2024-03-01", 0, 1),
            ("bf", "2024-03-02", 0, 2),
            ("other", "2024-03-01", 0, 1),
            ("other", "2024-03-02", 0, 2),
        ]

        def plain(rows: Iterable[TaskTuple]) -> list[TaskRow]:
            return sorted(
                TaskRow(*r[:9], bool(r[9]), tuple(r[10] or ()), bool(r[11]), *r[12:]) for r in rows
            )

        assert plain(r for b in blocks for r in b.rows()) == plain(store.task_rows(["bf", "other"]))
        one, two, other, last = blocks
        assert (one.state, two.priority, last.cyctime) == ("pending", 0, AT + 2 * 86400)
        assert isinstance(one.cyctime, list) and isinstance(two.state, list)
        assert two.deps is None and two.not_before is None and last.reason is None
        assert sorted(two.reason or (), key=str) == [None, why]
        assert (other.state, other.flags) == ("failed", 0)
        assert other.column(other.resource_group) == ["x,y", "x,y"]  # one value, or a list
        assert (other.deps, other.reason) == ([["o0"], ["o0"]], [why, why])
        assert list(store.task_blocks([])) == []

    def test_the_scheduler_s_rows_left_early_leave_the_store_usable(self, make: Make) -> None:
        """task_rows streams (the connection is held while it is read): an iterator left
        after its first row lets go of the connection, and the store reads and writes."""
        store = seeded(make())
        rows = iter(store.task_rows(["bf", "other"]))
        assert next(rows)[0] in {"a1", "b1", "a2", "o1"}
        del rows
        assert store.transition(["a1"], "failed", allowed=["pending"], at=AT, **WHO) == ["a1"]
        assert sorted(r[0] for r in store.task_rows(["bf"])) == ["a1", "a2", "b1"]

    def test_a_month_cell_splits_at_the_first_failed_date_of_each_group(self, make: Make) -> None:
        store = make()
        days = [instance(f"a{d}", day=d) for d in (1, 2, 3)]
        store.save_apply(
            [backfill()],
            [*days, instance("b3", "b", day=3, dry_run_reason="dry-run: node b")],
            [],
            [],
            at=AT,
            **WHO,
        )
        store.transition(["a2"], "failed", allowed=["pending"], at=AT, **WHO)
        assert store.month_counts("bf") == {
            ("a", "2024-03", "pending", False, False): (1, "a1"),  # before the failed date
            ("a", "2024-03", "pending", False, True): (1, "a1"),  # a3, behind it
            ("a", "2024-03", "failed", False, False): (1, "a2"),
            ("b", "2024-03", "pending", True, True): (1, "b3"),
        }
        store.transition(["a1"], "failed", allowed=["pending"], at=AT, **WHO)
        assert store.month_counts("bf")[("a", "2024-03", "failed", False, True)] == (1, "a1")
        assert store.month_counts("other") == {}

    def test_date_spans_hold_when_a_date_s_attempts_ran_and_its_states(self, make: Make) -> None:
        store = seeded(make())
        assert store.date_spans("bf") == {
            (0, 1, "2024-03-01"): DateSpan(None, None, {"pending": 2}),
            (1, 2, "2024-03-02"): DateSpan(None, None, {"pending": 1}),
        }
        end(store, "a1", start(store, "a1", AT), "failed")  # ends at AT + 10
        b1 = start(store, "b1", AT + 5)
        store.transition(
            ["a2"], "cancelled", allowed=["pending"], at=AT, finished_at=AT + 50, **WHO
        )
        assert store.date_spans("bf") == {  # b1 runs: no end yet
            (0, 1, "2024-03-01"): DateSpan(AT, None, {"failed": 1, "running": 1}),
            (1, 2, "2024-03-02"): DateSpan(None, None, {"cancelled": 1}),  # not an attempt
        }
        end(store, "b1", b1, at=AT + 30)
        assert store.date_spans("bf")[0, 1, "2024-03-01"] == DateSpan(
            AT, AT + 30, {"failed": 1, "succeeded": 1}
        )
        assert store.date_spans("none") == {}

    def test_a_transition_moves_only_instances_in_an_allowed_state(self, make: Make) -> None:
        store = seeded(make())
        store.transition(["a1"], "failed", allowed=["pending"], at=AT, **WHO)

        moved = store.transition(
            ["a1", "b1", "zz"],
            "succeeded",
            allowed=iter(["failed"]),
            at=AT + 1,
            actor="ann",
            origin="cli",
            reason="set to succeeded by ann",
            kind="set-success",
            finished_at=AT + 1,
            stop_requested=True,
        )

        assert moved == ["a1"]
        a1 = state(store, "a1")
        assert (a1.state, a1.reason, a1.finished_at, a1.stop_requested, a1.updated_at) == (
            "succeeded",
            "set to succeeded by ann",
            AT + 1,
            True,
            AT + 1,
        )
        assert state(store, "b1").state == "pending"
        event = store.events(instance="a1")[-1]
        assert (event.at, event.actor, event.origin, event.kind) == (
            AT + 1,
            "ann",
            "cli",
            "set-success",
        )
        assert (event.backfill, event.from_state, event.to_state, event.message) == (
            "bf",
            "failed",
            "succeeded",
            "set to succeeded by ann",
        )
        events = store.last_event_id()
        with pytest.raises(ValueError, match="cannot set"):
            store.transition(["a1"], "pending", allowed=["succeeded"], at=AT, node="x", **WHO)
        assert state(store, "a1").state == "succeeded" and store.last_event_id() == events

    def test_waiting_states_change_with_one_event_each_and_never_touch_a_running_one(
        self, make: Make
    ) -> None:
        store = seeded(make())
        start(store, "b1")
        before = store.last_event_id()
        blocker = {"cause": "resources", "group": "rg", "busy": 2, "slots": 2}
        updates = [
            ("a1", "waiting-for-resources", "rg: 2 of 2 slots busy", blocker),
            ("b1", "pending", None, None),
            ("zz", "pending", None, None),
        ]

        assert store.set_waiting(updates, at=AT, actor="c", origin="c") == 1
        assert store.set_waiting(updates, at=AT, actor="c", origin="c") == 0  # no change
        assert store.set_waiting([], at=AT, actor="c", origin="c") == 0
        a1 = state(store, "a1")
        assert (a1.state, a1.reason, a1.blocker) == (
            "waiting-for-resources",
            "rg: 2 of 2 slots busy",
            blocker,
        )
        assert (state(store, "b1").state, state(store, "b1").reason) == ("running", None)
        (event,) = store.events(after=before)
        assert (event.kind, event.instance, event.from_state, event.to_state, event.message) == (
            "transition",
            "a1",
            "pending",
            "waiting-for-resources",
            "rg: 2 of 2 slots busy",
        )
        # the same state with a new reason: kept, without an event
        later = [("a1", "waiting-for-resources", "rg: 1 of 1 slots busy", None)]
        assert store.set_waiting(later, at=AT + 1, actor="c", origin="c") == 0
        assert (state(store, "a1").reason, state(store, "a1").blocker) == (
            "rg: 1 of 1 slots busy",
            None,
        )
        # any other change clears the blocker
        store.set_waiting(updates[:1], at=AT, actor="c", origin="c")
        store.transition(["a1"], "frozen", allowed=["waiting-for-resources"], at=AT, **WHO)
        assert state(store, "a1").blocker is None

    # -- attempts --------------------------------------------------------------------

    def test_an_attempt_begins_only_from_a_waiting_state_and_its_end_is_kept(
        self, make: Make
    ) -> None:
        store = seeded(make())
        store.set_waiting(
            [("a1", "waiting-for-time", "not before 02:00", {"cause": "time"})], at=AT, **WHO
        )

        assert store.begin_attempt("a1", "local", at=AT, actor="c", origin="c") == 1

        a1 = state(store, "a1")
        assert (a1.state, a1.reason, a1.blocker, a1.attempts, a1.tries_left, a1.started_at) == (
            "running",
            None,
            None,
            1,
            1,
            AT,
        )
        event = store.events(instance="a1")[-1]
        assert (event.from_state, event.to_state, event.message) == (
            "waiting-for-time",
            "running",
            "attempt 1",
        )
        assert store.begin_attempt("a1", "local", at=AT, actor="c", origin="c") is None
        assert store.begin_attempt("zz", "local", at=AT, actor="c", origin="c") is None
        (attempt,) = store.attempts("a1")
        assert (attempt.backend, attempt.state, attempt.handle, attempt.started_at) == (
            "local",
            "starting",
            {},
            AT,
        )
        store.set_attempt_handle("a1", 1, {"pid": 42}, "/logs/a.1.log")
        store.set_attempt_handle("a1", 1, {"pid": 43}, "/other.log")  # only while starting
        (attempt,) = store.attempts("a1", states=["running"])
        assert (attempt.handle, attempt.log) == ({"pid": 42}, "/logs/a.1.log")
        # Stopped and set to failed by an operator meanwhile: the attempt's end is
        # recorded, the instance is left as the operator made it.
        store.transition(["a1"], "failed", allowed=["running"], at=AT, actor="op", origin="cli")
        assert end(store, "a1", 1)
        (attempt,) = store.attempts("a1")
        assert (attempt.state, attempt.exit_code, attempt.log, attempt.finished_at) == (
            "succeeded",
            0,
            "/logs/a.1.log",
            AT + 10,
        )
        assert state(store, "a1").state == "failed"

    def test_an_attempt_s_end_moves_its_instance_with_an_event(self, make: Make) -> None:
        store = seeded(make())
        store.transition(["a1"], "running", allowed=["pending"], at=AT, **WHO)
        store.transition(["a1"], "pending", allowed=["running"], at=AT, stop_requested=True, **WHO)
        number = start(store, "a1")

        assert end(store, "a1", number, "failed", instance_state="pending", not_before=AT + 40)

        a1 = state(store, "a1")
        assert (a1.state, a1.reason, a1.not_before, a1.finished_at, a1.stop_requested) == (
            "pending",
            "exit code 1",
            AT + 40,
            None,
            False,
        )
        event = store.events()[-1]
        assert (event.kind, event.instance, event.from_state, event.to_state, event.message) == (
            "transition",
            "a1",
            "running",
            "pending",
            "exit code 1",
        )
        assert start(store, "a1") == 2
        assert end(store, "a1", 2, "failed")
        assert (state(store, "a1").state, state(store, "a1").finished_at) == ("failed", AT + 10)
        assert [(a.number, a.state) for a in store.attempts(states=["failed"])] == [
            (1, "failed"),
            (2, "failed"),
        ]

    def test_the_first_report_of_an_attempt_s_end_wins(self, make: Make) -> None:
        """Two controllers may both report an attempt (one lost the lease while it could
        not write, the other adopted the attempt): the first report stands (issue 8)."""
        store = seeded(make())
        assert start(store, "a1") == 1
        assert end(store, "a1", 1, "succeeded", origin="old")
        events = store.last_event_id()
        assert not end(store, "a1", 1, "lost", instance_state="pending", origin="new")
        (attempt,) = store.attempts("a1")
        assert attempt.state == "succeeded"
        assert state(store, "a1").state == "succeeded"
        assert store.last_event_id() == events
        assert not end(store, "a1", 7)  # no such attempt

    def test_a_late_report_of_an_earlier_attempt_leaves_the_instance_alone(
        self, make: Make
    ) -> None:
        store = seeded(make())
        start(store, "a1")
        store.transition(["a1"], "pending", allowed=["running"], at=AT, **WHO)  # adopted
        start(store, "a1")  # attempt 2 runs
        assert end(store, "a1", 1, "failed")
        assert (state(store, "a1").state, state(store, "a1").attempts) == ("running", 2)

    def test_an_attempt_that_did_not_start_is_forgotten_and_its_try_given_back(
        self, make: Make
    ) -> None:
        store = seeded(make())
        before = state(store, "a1")
        start(store, "a1")

        store.abandon_attempt(
            "a1", 1, state="waiting-for-resources", reason="no room", at=AT + 1, **WHO
        )

        a1 = state(store, "a1")
        assert (a1.state, a1.reason, a1.attempts, a1.tries_left, a1.started_at) == (
            "waiting-for-resources",
            "no room",
            0,
            before.tries_left,
            None,
        )
        assert store.attempts("a1") == []
        event = store.events()[-1]
        assert (event.kind, event.from_state, event.to_state, event.message) == (
            "not-started",
            "running",
            "waiting-for-resources",
            "no room",
        )
        events = store.last_event_id()
        number = start(store, "a1")
        store.set_attempt_handle("a1", number, {"pid": 1}, None)  # it started after all
        store.abandon_attempt("a1", number, state="pending", reason="x", at=AT, **WHO)
        assert [a.state for a in store.attempts("a1")] == ["running"]
        assert state(store, "a1").state == "running"
        assert store.last_event_id() == events + 1  # the start only

    def test_a_tick_s_attempts_begin_and_end_together_each_as_alone(self, make: Make) -> None:
        """What the controller writes once per tick: the starts it decided (only the
        waiting ones begin, fenced as one), their handles, and the ends it learnt (the
        first report of each wins), each attempt exactly as if written alone."""
        store = seeded(make())
        store.transition(["b1"], "succeeded", allowed=["pending"], at=AT, **WHO)
        store.acquire_lease("A", pid=1, host="h", at=AT, ttl=30)

        begun = store.begin_attempts(
            ["a2", "a1", "b1", "zz"], "local", at=AT, actor="c", origin="A", fence=("A", 1)
        )

        assert {i: b.number for i, b in begun.items()} == {"a2": 1, "a1": 1}
        a1 = state(store, "a1")  # what starting it needs, as the begin left it
        assert begun["a1"] == Begun(
            "a1", 1, a1.backfill, a1.node, a1.bizdate, a1.cyctime, a1.run, a1.timezone, 1
        )
        assert {(e.instance, e.to_state, e.message) for e in store.events()[-2:]} == {
            ("a1", "running", "attempt 1"),
            ("a2", "running", "attempt 1"),
        }
        assert (state(store, "a1").tries_left, state(store, "b1").state) == (1, "succeeded")
        store.set_attempt_handles([("a1", 1, {"pid": 1}, "/a1.log"), ("a2", 1, {"pid": 2}, None)])
        assert {(a.instance, a.state, a.handle["pid"]) for a in store.attempts()} == {
            ("a1", "running", 1),
            ("a2", "running", 2),
        }
        events = store.last_event_id()
        won = store.end_attempts(
            [
                AttemptEnd("a1", 1, "succeeded", 0, None, "succeeded"),
                AttemptEnd("a2", 1, "failed", 1, "exit code 1", "pending", AT + 40, ("end", 9)),
                AttemptEnd("a1", 7, "failed", 1, None, "failed"),  # no such attempt
            ],
            at=AT + 10,
            **WHO,
        )
        assert won == [True, True, False]
        assert (state(store, "a1").state, state(store, "a1").finished_at) == ("succeeded", AT + 10)
        assert (state(store, "a2").state, state(store, "a2").not_before) == ("pending", AT + 40)
        assert store.stored_log("a2", 1) == StoredLog("end", 9, AT + 10)
        assert store.last_event_id() == events + 2
        assert store.end_attempts(
            [AttemptEnd("a1", 1, "lost", None, None, "pending")], at=AT, **WHO
        ) == [False]
        assert store.begin_attempts([], "local", at=AT, **WHO) == {}
        assert store.end_attempts([], at=AT, **WHO) == []
        with pytest.raises(LeaseLost):  # a lost lease: none of them begins
            store.begin_attempts(["a2"], "local", at=AT, actor="c", origin="B", fence=("B", 9))
        assert state(store, "a2").state == "pending"

    def test_an_attempt_keeps_the_handle_it_was_begun_with_until_it_starts(
        self, make: Make
    ) -> None:
        """The backend's `unstarted_handle` (the local one's: where it was begun), which a
        controller that settles the attempt reads; the handle of its start replaces it."""
        store = seeded(make())
        where = {"place": "vm/m/b/4:1", "runs": "4:2"}
        begun = store.begin_attempts(["a1", "a2"], "local", at=AT, handle=where, **WHO)
        assert set(begun) == {"a1", "a2"}
        assert {(a.instance, a.state) for a in store.attempts()} == {
            ("a1", "starting"),
            ("a2", "starting"),
        }
        assert [a.handle for a in store.attempts()] == [where, where]
        store.set_attempt_handles([("a1", 1, {"pid": 7, "place": "vm/m/b/4:1"}, "/a1.log")])
        assert {a.instance: a.handle for a in store.attempts()} == {
            "a1": {"pid": 7, "place": "vm/m/b/4:1"},
            "a2": where,
        }

    def test_an_end_carries_the_handle_of_an_attempt_that_ended_before_it_was_written(
        self, make: Make
    ) -> None:
        """An attempt started and ended between two of the controller's writes: its
        handle and log path are written with its end."""
        store = seeded(make())
        number = start(store, "a1")
        end = AttemptEnd("a1", number, "succeeded", 0, None, "succeeded")
        assert store.end_attempts(
            [end._replace(handle=({"pid": 7}, "/a1.log"))], at=AT + 5, **WHO
        ) == [True]
        (attempt,) = store.attempts("a1")
        assert (attempt.state, attempt.handle, attempt.log) == ("succeeded", {"pid": 7}, "/a1.log")
        assert attempt.finished_at == AT + 5

    def test_a_batch_commits_its_writes_together_or_none_of_them(self, make: Make) -> None:
        store = seeded(make())
        events = store.last_event_id()
        with store.batch():
            number = start(store, "a1")
            store.set_attempt_handles([("a1", number, {"pid": 1}, None)])
            assert state(store, "a1").state == "running"  # read inside: its own writes
        assert [a.state for a in store.attempts("a1")] == ["running"]
        assert store.last_event_id() == events + 1

        with pytest.raises(LeaseLost), store.batch():
            assert end(store, "a1", number)
            start(store, "a2")
            store.check_fence(("nobody", 1))
        assert [a.state for a in store.attempts("a1")] == ["running"]  # nothing of it stayed
        assert (state(store, "a1").state, state(store, "a2").state) == ("running", "pending")
        assert store.last_event_id() == events + 1

    def test_a_batch_inside_a_batch_is_part_of_it(self, make: Make) -> None:
        """What the outer batch writes after the inner one ended is in its transaction
        too: a failure after it leaves nothing of either."""
        store = seeded(make())
        events = store.last_event_id()
        with pytest.raises(LeaseLost), store.batch():
            with store.batch():
                start(store, "a1")
            start(store, "a2")
            store.check_fence(("nobody", 1))
        assert (state(store, "a1").state, state(store, "a2").state) == ("pending", "pending")
        assert store.attempts("a1") == []
        assert store.last_event_id() == events

    # -- the lease and its fence -----------------------------------------------------

    def test_epochs_fence_the_starts_of_a_controller_that_lost_the_lease(self, make: Make) -> None:
        store = seeded(make())
        with pytest.raises(LeaseLost, match="nobody holds it now"):
            store.check_fence(("A", 1))
        old = store.acquire_lease("A", pid=1, host="h", at=100, ttl=30)
        store.check_fence(("A", 1))
        new = store.acquire_lease("B", pid=2, host="h", at=131, ttl=30)  # A paused past it
        assert (old.epoch, new.epoch) == (1, 2)
        events = store.last_event_id()
        with pytest.raises(LeaseLost, match=r"no longer ours \(epoch 1\): B \(epoch 2\)"):
            store.begin_attempt("a1", "local", at=AT, actor="c", origin="A", fence=("A", 1))
        with pytest.raises(LeaseLost):
            store.check_fence(("A", 1))
        assert state(store, "a1").state == "pending"  # nothing recorded
        assert store.attempts() == [] and store.last_event_id() == events
        assert store.begin_attempt("b1", "local", at=AT, actor="c", origin="B", fence=("B", 2))
        store.release_lease("A")  # a stale release leaves the newer holder's lease alone
        assert store.lease() == new

    def test_the_lease_is_held_renewed_expires_and_is_released(self, make: Make) -> None:
        store = make()
        assert store.lease() is None
        first = store.acquire_lease("A", pid=1, host="h", at=100, ttl=30)
        assert (first.holder, first.pid, first.host, first.expires_at, first.epoch) == (
            "A",
            1,
            "h",
            130,
            1,
        )
        assert store.acquire_lease("B", pid=2, host="h", at=110, ttl=30) == first  # held
        renewed = store.acquire_lease("A", pid=1, host="h", at=120, ttl=30)
        assert (renewed.acquired_at, renewed.expires_at, renewed.epoch) == (100, 150, 1)
        taken = store.acquire_lease("B", pid=2, host="h", at=151, ttl=30)  # expired
        assert (taken.holder, taken.acquired_at, taken.epoch) == ("B", 151, 2)
        store.take_over_lease("A")  # not the holder: nothing happens
        assert store.lease() == taken
        store.take_over_lease("B")  # B is known to be dead
        assert store.acquire_lease("C", pid=3, host="h", at=152, ttl=30).holder == "C"
        store.release_lease("A")  # not the holder: nothing happens
        assert store.acquire_lease("A", pid=1, host="h", at=153, ttl=30).holder == "C"
        store.release_lease("C")
        released = store.lease()
        assert released is not None and (released.holder, released.expires_at) == ("C", 0)
        assert store.acquire_lease("A", pid=1, host="h", at=154, ttl=30).epoch == 4

    # -- events ----------------------------------------------------------------------

    def test_events_are_read_in_order_by_backfill_instance_origin_and_the_newest(
        self, make: Make
    ) -> None:
        store = make()
        assert (store.events(), store.last_event_id()) == ([], 0)
        seeded(store)
        store.add_events(
            "gc",
            [("bf", "collected 3"), (None, "logs cleared")],
            at=AT + 9,
            actor="gc",
            origin="gc",
        )
        store.add_events("gc", [], at=AT, actor="gc", origin="gc")
        events = store.events()
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(set(ids)) == 8 and store.last_event_id() == ids[-1]
        assert [(e.kind, e.backfill, e.message, e.origin) for e in events[-2:]] == [
            ("gc", "bf", "collected 3", "gc"),
            ("gc", None, "logs cleared", "gc"),
        ]
        assert store.events(after=ids[-2]) == events[-1:]
        assert store.events(backfill="other") == [events[3], events[5]]
        assert store.events(instance="b1") == [events[1]]
        assert store.events(limit=3) == events[-3:]
        assert store.events(backfill="bf", limit=2) == [events[4], events[6]]
        assert store.events(limit=0) == []

    # -- retention -------------------------------------------------------------------

    def test_instance_ages_are_what_gc_weighs(self, make: Make) -> None:
        store = seeded(make())
        store.transition(["o1"], "succeeded", allowed=["pending"], at=AT, finished_at=AT + 3, **WHO)
        ages = store.instance_ages()
        assert [(a.backfill, a.id) for a in ages] == [
            ("bf", "a1"),
            ("bf", "a2"),
            ("bf", "b1"),
            ("other", "o1"),
        ]
        assert ages[-1] == ("o1", "other", "succeeded", "rg", AT + 3, AT)

    def test_gc_deletes_only_what_finished_before_with_its_attempts_and_events(
        self, make: Make
    ) -> None:
        store = seeded(make())
        start(store, "a1")
        end(store, "a1", 1, "failed")  # failed at AT + 10, b1 still pending: holds it back
        store.transition(["a2"], "cancelled", allowed=["pending"], at=AT, **WHO)  # never finished
        store.transition(
            ["o1"], "succeeded", allowed=["pending"], at=AT, finished_at=AT + 50, **WHO
        )
        ids = ["a1", "a2", "b1", "o1", "zz"]

        assert store.delete_instances(ids, finished_before=AT + 20) == ["a2"]  # created at AT
        assert store.delete_instances(ids, finished_before=AT + 100) == ["o1"]
        store.transition(["b1"], "cancelled", allowed=["pending"], at=AT, finished_at=AT, **WHO)
        assert sorted(store.delete_instances(ids, finished_before=AT + 100)) == ["a1", "b1"]

        assert store.instances() == [] and store.attempts() == []
        assert all(e.instance is None for e in store.events())

    def test_gc_deletes_a_backfill_only_when_it_is_empty_and_ended_before(self, make: Make) -> None:
        store = seeded(make())
        store.update_backfill("other", at=AT, status="deleted", **WHO)
        store.update_backfill("bf", at=AT, finished_at=AT + 50, outcome="succeeded", **WHO)
        names = ["bf", "other", "none"]
        assert store.delete_backfills(names, finished_before=AT + 100) == []  # instances left
        store.transition(
            ["a1", "b1", "a2", "o1"], "cancelled", allowed=["pending"], at=AT, finished_at=AT, **WHO
        )
        store.delete_instances(["a1", "b1", "a2", "o1"], finished_before=AT + 1)
        assert store.delete_backfills(names, finished_before=AT + 10) == ["other"]  # at AT
        assert store.delete_backfills(names, finished_before=AT + 100) == ["bf"]
        assert store.backfills(include_deleted=True) == []
        assert store.events() == []

    def test_gc_clears_the_log_of_finished_attempts_while_it_is_still_theirs(
        self, make: Make
    ) -> None:
        store = seeded(make())
        for ident in ("a1", "b1"):
            start(store, ident)
            store.set_attempt_handle(ident, 1, {}, f"/logs/{ident}.log")
        end(store, "a1", 1)
        logs = [("a1", 1, "/logs/a1.log"), ("b1", 1, "/logs/b1.log"), ("a2", 1, "/x")]
        assert store.clear_logs([("a1", 1, "/elsewhere.log")], at=AT + 99) == []
        assert store.attempts("a1")[0].log_removed_at is None
        assert store.clear_logs(logs, at=AT + 100) == [("a1", 1)]  # b1 still runs
        assert [(a.log, a.log_removed_at) for a in store.attempts()] == [
            (None, AT + 100),  # what readers say: gc removed it, and when
            ("/logs/b1.log", None),
        ]

    # -- attempts' logs kept in the store --------------------------------------------

    def test_an_attempt_s_log_is_kept_replaced_and_read_back(self, make: Make) -> None:
        store = seeded(make())
        start(store, "a1")
        end(store, "a1", 1)
        assert store.stored_log("a1", 1) is None
        store.save_log("a1", 1, "first\n", size=6, at=AT)
        store.save_log("a1", 1, "é\x00last\n", size=5000, at=AT + 1)
        kept = store.stored_log("a1", 1)
        assert kept is not None
        assert (kept.text, kept.size, kept.stored_at) == ("é\ufffdlast\n", 5000, AT + 1)
        assert kept.cut == 5000 - len("é\ufffdlast\n".encode())
        assert store.stored_log("a1", 2) is None and store.stored_log("b1", 1) is None

    def test_an_attempt_s_end_keeps_its_log_in_the_same_commit_only_if_it_wins(
        self, make: Make
    ) -> None:
        store = seeded(make())
        start(store, "a1")
        assert end(store, "a1", 1, log=("out\x00\n", 9))
        kept = store.stored_log("a1", 1)
        assert kept is not None and (kept.text, kept.size) == ("out\ufffd\n", 9)
        assert (kept.stored_at, state(store, "a1").state) == (AT + 10, "succeeded")
        assert not end(store, "a1", 1, "failed", log=("late\n", 5))  # the first report won
        assert store.stored_log("a1", 1) == kept
        start(store, "b1")
        end(store, "b1", 1)  # no copy asked for: none kept
        assert store.stored_log("b1", 1) is None

    def test_gc_forgets_an_attempt_s_stored_log_with_its_log_or_its_instance(
        self, make: Make
    ) -> None:
        store = seeded(make())
        for ident in ("a1", "o1"):
            start(store, ident)
            store.set_attempt_handle(ident, 1, {}, f"/logs/{ident}.log")
            end(store, ident, 1)
            store.save_log(ident, 1, f"{ident}\n", size=3, at=AT)
        assert store.clear_logs([("a1", 1, "/elsewhere.log")], at=AT) == []
        assert store.stored_log("a1", 1) is not None  # not its log: kept
        assert store.clear_logs([("a1", 1, "/logs/a1.log")], at=AT) == [("a1", 1)]
        assert store.stored_log("a1", 1) is None
        assert store.delete_instances(["o1"], finished_before=AT + 1000) == ["o1"]
        assert store.stored_log("o1", 1) is None
