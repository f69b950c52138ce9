"""The controller loop with the in-memory backend: what starts, what is recorded, retries,
timeouts, stops, operators' changes, adoption and the lease."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.backends import (
    AttemptSpec,
    BackendContext,
    NotStarted,
    Outcome,
    make_backend,
)
from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.runtime.attempts import SHARE_COMMIT
from backfill_ctl.runtime.controller import Controller, Tick
from backfill_ctl.runtime.lease import this_host
from backfill_ctl.state import StateError, StateStore, open_store
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.backfill_ops import delete_backfill
from backfill_ctl.usecases.operations import operate
from backfill_ctl.usecases.plan import make_plan
from tests.builders import backfill, node, resource_group, specs_of, workspace
from tests.running import NOW, Clock, applied, controller, drain, states, where

CHAIN = (node("a", resourceGroup="rg"), node("b", upstream=["a"], resourceGroup="rg"))


def test_a_backfill_runs_to_the_end_in_dependency_order(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill(dates=["2024-03-01", "2024-03-02"]))
    backend = FakeBackend()
    c = controller(store, backend)
    drain(c)
    assert set(states(store).values()) == {"succeeded"}
    assert [(s.node, s.bizdate) for s in backend.started] == [
        ("a", "2024-03-01"),
        ("b", "2024-03-01"),
        ("a", "2024-03-02"),
        ("b", "2024-03-02"),
    ]
    assert store.backfill("bf").outcome == "succeeded"  # type: ignore[union-attr]
    assert [a.state for a in store.attempts()] == ["succeeded"] * 4


def test_every_transition_is_an_event_with_time_and_actor(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    drain(controller(store))
    a = next(i for i in store.instances() if i.node == "a")
    trail = [(e.kind, e.from_state, e.to_state, e.actor) for e in store.events(instance=a.id)]
    assert trail == [
        ("created", None, "pending", "test"),
        ("transition", "pending", "running", "controller"),
        ("transition", "running", "succeeded", "controller"),
    ]
    assert all(e.at == NOW.timestamp() for e in store.events(instance=a.id))


def test_the_controller_s_event_read_moves_past_its_own_events(tmp_path: Path) -> None:
    """Its own events are not news, but the watermark moves past them: a read filtered
    in the store scanned every one of them again on each tick."""
    store = applied(tmp_path, *CHAIN, backfill(dates=["2024-03-01", "2024-03-02"]))
    c = controller(store)
    drain(c)
    assert c._news() == [] and c._watermark == store.last_event_id()
    store.transition(
        [i.id for i in store.instances()][:1],
        "pending",
        allowed=["succeeded"],
        at=0,
        actor="ann",
        origin="cli",
    )
    assert [e.origin for e in c._news()] == ["cli"]  # an operator's change, once
    assert c._news() == []


def _commits(store: StateStore) -> Any:
    """A function giving the tables each transaction since its last call wrote (the
    lease's aside), from the SQLite store's statement trace."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]

    def commits() -> list[set[str]]:
        written, tables = [], set()
        for sql in statements:
            words = sql.split()
            if words[0] in ("INSERT", "UPDATE"):
                tables.add(words[2] if words[0] == "INSERT" else words[1])
            elif sql == "COMMIT" and tables - {"lease"}:
                written.append(tables)
            if sql == "COMMIT":
                tables = set()
        statements.clear()
        return written

    return commits


def test_a_tick_writes_its_attempts_in_a_commit_or_two_whatever_their_number(
    tmp_path: Path,
) -> None:
    """Issue 15: a commit costs more than its statements, so the attempts a tick starts
    are begun in one transaction (with why the rest waits), and their handles are written
    with the ends the next tick learns, in one: not three commits per attempt."""
    wide = [node(f"n{n}", resourceGroup="big") for n in range(6)]
    roots = {"method": "manual", "roots": [f"n{n}" for n in range(6)]}
    store = applied(tmp_path, resource_group("big", 8), *wide, backfill(select=roots), sqlite=True)
    commits = _commits(store)

    backend = FakeBackend()
    c = controller(store, backend)
    commits()

    assert c.tick().started == 6
    assert commits() == [{"events", "attempts", "instances"}]  # the six begun
    assert {a.state for a in store.attempts()} == {"starting"}
    ending = c.tick()
    assert (ending.ended, ending.finished) == (6, ("bf",))
    # The six handles and ends; the backfill's end.
    assert commits() == [{"attempts", "instances", "events"}, {"backfills", "events"}]
    assert [a.state for a in store.attempts()] == ["succeeded"] * 6
    assert len(backend.started) == 6


def test_a_tick_reads_what_its_starts_need_with_the_update_that_begins_them(
    tmp_path: Path,
) -> None:
    """Issue 15: the begin's UPDATE returns each instance's command and the rest a start
    needs: no read of the instances before it (a round trip a tick on PostgreSQL)."""
    wide = [node(f"n{n}", resourceGroup="big") for n in range(6)]
    roots = {"method": "manual", "roots": [f"n{n}" for n in range(6)]}
    store = applied(tmp_path, resource_group("big", 8), *wide, backfill(select=roots), sqlite=True)
    backend = FakeBackend()
    c = controller(store, backend)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]

    assert c.tick().started == 6

    assert [s for s in statements if s.startswith("SELECT") and "FROM instances" in s] == []
    assert sorted(spec.run.command for spec in backend.started) == [  # each its own
        ("run", f"n{n}", "20240301") for n in range(6)
    ]


def test_the_tick_that_records_an_end_begins_what_it_made_ready_in_the_same_commit(
    tmp_path: Path,
) -> None:
    """Issue 15: a chain pays one commit per step, not two (one for the end, one for the
    start it allows): on 210 sequential steps of a small backfill that was a tenth of
    its time on SQLite, more on PostgreSQL, where each commit waits for the disk."""
    store = applied(tmp_path, *CHAIN, backfill(), sqlite=True)
    commits = _commits(store)
    backend = FakeBackend()
    c = controller(store, backend)
    commits()
    assert c.tick().started == 1
    assert commits() == [{"events", "attempts", "instances"}]  # a begun
    step = c.tick()
    assert (step.ended, step.started) == (1, 1)
    assert commits() == [{"events", "attempts", "instances"}]  # a's end and b begun: one
    first, second = store.attempts()
    assert first.finished_at is not None and first.finished_at <= second.started_at
    drain(c)
    assert [a.state for a in store.attempts()] == ["succeeded"] * 2


DIAMOND = (
    node("a", resourceGroup="rg"),
    node("b", upstream=["a"], resourceGroup="rg"),
    node("c", upstream=["a"], resourceGroup="rg"),
    node("d", upstream=["b", "c"], resourceGroup="rg"),
)


def test_a_join_s_first_upstream_end_waits_to_share_the_commit_that_begins_the_join(
    tmp_path: Path,
) -> None:
    """Issue 15: an end that makes nothing ready is kept back while its backfill has an
    attempt still running, SHARE_COMMIT s at most: the join's other upstream ends, and
    both ends and the join's begin are one commit, not two. The wait for them does not
    spin: the controller sleeps until an end comes or the time is up."""
    store = applied(tmp_path, *DIAMOND, backfill(), sqlite=True)
    commits = _commits(store)
    done: set[str] = {"a"}
    backend = FakeBackend(lambda spec: 0 if spec.node in done else None)
    c = controller(store, backend)
    assert c.tick().started == 1 and c.tick().started == 2  # a; then b and c
    commits()
    done.add("b")
    kept = c.tick()
    assert (kept.ended, kept.started) == (1, 0)
    assert commits() == []  # b's end (and the handles of b and c) wait
    assert states(store)["b@01"] == "running"
    assert not c._again(kept) and 0 < c._unwritten_for() <= SHARE_COMMIT
    done.add("c")
    step = c.tick()
    assert (step.ended, step.started) == (1, 1)
    assert commits() == [{"attempts", "instances", "events"}]  # b's and c's ends, d begun
    assert [s.node for s in backend.started][3:] == ["d"]
    done.add("d")
    drain(c)
    assert set(states(store).values()) == {"succeeded"}


def test_an_end_kept_back_is_written_after_share_commit_while_the_rest_runs(
    tmp_path: Path,
) -> None:
    """The other attempt may run for hours (real processes here): the kept end is
    written once SHARE_COMMIT passed, and the controller sleeps in between, it does not
    spin."""
    diamond = [
        node("a", command=["true"], resourceGroup="rg"),
        node("b", upstream=["a"], command=["true"], resourceGroup="rg"),
        node("c", upstream=["a"], command=["sleep", "0.6"], resourceGroup="rg"),
        node("d", upstream=["b", "c"], command=["true"], resourceGroup="rg"),
    ]
    store = applied(tmp_path, *diamond, backfill(), sqlite=True)
    c = controller(store, LocalBackend(tmp_path / "runs"))
    ticks: list[Tick] = []
    c.run(interval=5.0, until=lambda t: states(store)["b@01"] == "succeeded", on_tick=ticks.append)
    assert states(store)["c@01"] == "running"
    b_id = next(i.id for i in store.instances() if i.node == "b")
    b = next(a for a in store.attempts() if a.instance == b_id)
    assert b.finished_at is not None and b.finished_at - b.started_at < 0.3  # not c's 0.6 s
    # a; b and c; b's end (kept); written SHARE_COMMIT later (and a spare wake-up or two)
    assert len(ticks) <= 6, [(t.started, t.ended) for t in ticks]
    gate = c.scheduler.gates["bf"]
    c.run(interval=5.0, until=lambda t: gate.record.finished_at is not None)
    assert set(states(store).values()) == {"succeeded"}


def test_the_last_end_of_a_backfill_is_never_kept_back(tmp_path: Path) -> None:
    """Nothing else of its backfill runs: no end would come to share the commit, and the
    backfill finishes at once."""
    store = applied(tmp_path, *DIAMOND, backfill(), sqlite=True)
    c = controller(store, FakeBackend())
    drain(c)
    assert store.backfill("bf").outcome == "succeeded"  # type: ignore[union-attr]
    assert c._unwritten_since is None and not c._outcomes


def test_an_attempt_that_ended_before_its_handle_was_written_is_updated_once(
    tmp_path: Path,
) -> None:
    """Its handle goes with its end: one UPDATE of the attempt, not one for each."""
    store = applied(tmp_path, *CHAIN, backfill(), sqlite=True)
    c = controller(store, FakeBackend())
    assert c.tick().started == 1
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    assert c.tick().ended == 1
    assert len([s for s in statements if s.startswith("UPDATE attempts")]) == 1
    (first, _) = store.attempts()
    assert (first.state, first.handle) == ("succeeded", {"fake": f"{first.instance}.1"})


def test_a_tick_whose_commit_fails_stores_none_of_it_and_writes_the_end_again(
    tmp_path: Path,
) -> None:
    """The end a tick learnt and the start it allowed are one transaction: when it
    fails (here the store refuses the begin, as a full disk would), neither is stored,
    nothing starts, and the next tick writes the end again and starts the successor,
    once."""
    store = applied(tmp_path, *CHAIN, backfill(), sqlite=True)
    backend = FakeBackend()
    c = controller(store, backend)
    assert c.tick().started == 1
    begin = store.begin_attempts
    failing = [True]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if failing and failing.pop():
            raise StateError("the state store cannot be written: disk full")
        return begin(*args, **kwargs)

    store.begin_attempts = refuse  # type: ignore[method-assign]
    failed = c.tick()
    assert failed.started == 0 and len(backend.started) == 1
    assert [a.state for a in store.attempts()] == ["starting"]  # a's end: not stored
    assert sorted(states(store).values()) == ["pending", "running"]
    c._store_retry_at = 0.0  # (no back-off wait in a test)
    drain(c)
    assert [(s.node, s.number) for s in backend.started] == [("a", 1), ("b", 1)]
    assert [a.state for a in store.attempts()] == ["succeeded"] * 2


def test_a_chain_of_real_processes_takes_one_tick_per_step(tmp_path: Path) -> None:
    """Issue 15: the tick that starts a step waits for it (the backend wakes it when the
    process ends) instead of ticking again at once while it starts: one tick and one
    commit per step of a chain, where there were two of each."""
    chain = [node("n0", command=["true"])] + [
        node(f"n{k}", upstream=[f"n{k - 1}"], command=["true"]) for k in range(1, 6)
    ]
    roots = {"method": "descendants", "roots": ["n0"]}
    store = applied(tmp_path, *chain, backfill(select=roots), sqlite=True)
    commits = _commits(store)
    c = controller(store, LocalBackend(tmp_path / "runs"))
    commits()
    ticks: list[Tick] = []
    gate = c.scheduler.gates["bf"]
    c.run(interval=5.0, until=lambda t: gate.record.finished_at is not None, on_tick=ticks.append)
    assert [a.state for a in store.attempts()] == ["succeeded"] * 6
    assert len(ticks) <= 6 + 1, [(t.started, t.ended) for t in ticks]
    assert (
        len(commits()) <= 6 + 2
    )  # a step each (its end and the next begun), the last end, the backfill's end


def test_a_failure_is_retried_as_the_node_allows_then_fails(tmp_path: Path) -> None:
    store = applied(
        tmp_path,
        node("a", run={"command": ["false"], "retries": 2, "retryDelay": "0s"}, resourceGroup="rg"),
        backfill(),
    )
    drain(controller(store))
    (a,) = store.instances()
    assert (a.state, a.attempts) == ("failed", 3)
    assert [x.message for x in store.attempts()] == [
        "retrying after attempt 1: exit code 1",
        "retrying after attempt 2: exit code 1",
        "exit code 1",
    ]
    assert store.backfill("bf").outcome == "failed"  # type: ignore[union-attr]


def test_a_retry_starts_after_the_attempt_before_it_ended(tmp_path: Path) -> None:
    """Times read as they pass: a retry begun in the tick that recorded the failure
    before it starts after that end, not at the tick's start (the real cluster's retry
    test saw attempt 2 start 12 ms before attempt 1 ended)."""
    store = applied(
        tmp_path,
        node("a", run={"command": ["false"], "retries": 1, "retryDelay": "0s"}, resourceGroup="rg"),
        backfill(),
    )

    class Ticking(Clock):
        def __call__(self) -> float:
            self.now += 0.001
            return self.now

    drain(controller(store, clock=Ticking()))
    first, second = store.attempts()
    assert first.finished_at is not None and second.started_at >= first.finished_at


def test_a_retry_waits_for_the_node_s_retry_delay(tmp_path: Path) -> None:
    """Item 11: DataWorks' rerun interval; 30 s unless the node says otherwise."""
    store = applied(
        tmp_path,
        node("a", run={"command": ["false"], "retries": 1}, resourceGroup="rg"),
        backfill(),
    )
    clock = Clock()
    c = controller(store, clock=clock)
    c.tick()  # attempt 1 starts
    c.tick()  # and fails: the retry waits
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.attempts) == ("waiting-for-time", 1)
    at = datetime.fromtimestamp(clock.now + 30, UTC)
    assert a.reason == f"retrying at {at:%Y-%m-%d %H:%M:%S %z}"
    assert a.not_before == clock.now + 30
    clock.now += 29
    c.tick()
    assert store.instances()[0].attempts == 1
    clock.now += 2
    c.tick()
    assert store.instances()[0].attempts == 2


def test_an_end_another_controller_recorded_first_is_taken_as_it_is(tmp_path: Path) -> None:
    """This controller could not write while another adopted and recorded the attempt:
    its own late report is refused, and it takes the store's word (issue 8)."""
    store = applied(tmp_path, node("a", resourceGroup="rg"), backfill())
    codes: dict[str, int | None] = {"a": None}
    c = controller(store, FakeBackend(lambda spec: codes["a"]))
    c.tick()
    (a,) = store.instances()
    assert a.state == "running"
    store.end_attempt(
        a.id,
        1,
        attempt_state="succeeded",
        exit_code=0,
        message=None,
        instance_state="succeeded",
        at=NOW.timestamp(),
        actor="controller",
        origin="the other controller",
    )
    codes["a"] = 1  # what this one believes, late
    drain(c)
    (attempt,) = store.attempts()
    assert (attempt.state, store.instances()[0].state) == ("succeeded", "succeeded")
    assert c.scheduler.tasks[a.id].state == "succeeded"
    assert store.backfill("bf").outcome == "succeeded"  # type: ignore[union-attr]


def test_a_failed_date_blocks_its_group_and_a_rerun_lets_it_continue(tmp_path: Path) -> None:
    def outcome(spec: AttemptSpec) -> int:
        return 1 if spec.bizdate == "2024-03-02" and spec.number == 1 else 0

    store = applied(
        tmp_path,
        node("a", resourceGroup="rg"),
        backfill(dates=[{"from": "2024-03-01", "to": "2024-03-04"}], groups=2),
    )
    c = controller(store, FakeBackend(outcome))
    drain(c)
    assert states(store) == {
        "a@01": "succeeded",
        "a@02": "failed",
        "a@03": "succeeded",
        "a@04": "succeeded",
    }
    assert store.backfill("bf").outcome == "failed"  # type: ignore[union-attr]
    store2 = applied(
        tmp_path / "b",
        node("a", resourceGroup="rg"),
        backfill(dates=[{"from": "2024-03-01", "to": "2024-03-03"}]),
    )
    c2 = controller(store2, FakeBackend(outcome))
    drain(c2)
    assert states(store2) == {"a@01": "succeeded", "a@02": "failed", "a@03": "pending"}
    failed = store2.instances(states=["failed"])
    operate(store2, "rerun", failed, actor="op", at=NOW.timestamp())
    drain(c2)
    assert set(states(store2).values()) == {"succeeded"}
    assert store2.backfill("bf").outcome == "succeeded"  # type: ignore[union-attr]
    assert [e.message for e in store2.events(backfill="bf") if e.instance is None][-2:] == [
        "reopened: rerun by op",
        "finished: succeeded",
    ]


def test_a_controller_started_after_a_rerun_runs_the_reopened_backfill(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    first = controller(store, FakeBackend(lambda spec: 1 if spec.node == "b" else 0))
    drain(first)
    first.release()
    assert store.backfill("bf").outcome == "failed"  # type: ignore[union-attr]
    operate(store, "rerun", store.instances(states=["failed"]), actor="op", at=NOW.timestamp())
    assert store.backfill("bf").finished_at is None  # type: ignore[union-attr]

    second = controller(store)  # loads only unfinished backfills
    drain(second)

    assert states(store) == {"a@01": "succeeded", "b@01": "succeeded"}
    assert store.backfill("bf").outcome == "succeeded"  # type: ignore[union-attr]


def test_a_full_resource_group_makes_instances_wait_for_resources(tmp_path: Path) -> None:
    store = applied(
        tmp_path,
        *(node(n, resourceGroup="rg", command=["hang"]) for n in "abc"),
        backfill(select={"method": "manual", "roots": ["a", "b", "c"]}),
    )
    c = controller(store)
    c.tick()
    assert sorted(states(store).values()) == ["running", "running", "waiting-for-resources"]
    (waiting,) = store.instances(states=["waiting-for-resources"])
    assert waiting.reason == "resource group rg: 2 of 2 slots busy"
    (event,) = [e for e in store.events(instance=waiting.id) if e.kind == "transition"]
    assert (event.to_state, event.message) == ("waiting-for-resources", waiting.reason)


def test_future_instances_wait_for_their_time(tmp_path: Path) -> None:
    store = applied(tmp_path, node("a", resourceGroup="rg"), backfill(dates=["2024-03-20"]))
    clock = Clock()
    c = controller(store, clock=clock)
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.reason) == ("waiting-for-time", "scheduled at 2024-03-21 02:00 +0000")
    clock.now = datetime(2024, 3, 21, 2, 0, tzinfo=UTC).timestamp()
    drain(c)
    assert store.instances()[0].state == "succeeded"


def test_a_timeout_kills_the_attempt_and_counts_as_a_failure(tmp_path: Path) -> None:
    store = applied(
        tmp_path,
        node(
            "a", command=["hang"], run={"command": ["hang"], "timeout": "10m"}, resourceGroup="rg"
        ),
        backfill(),
    )
    clock = Clock()
    backend = FakeBackend()
    c = controller(store, backend, clock)
    c.tick()
    clock.now += 601
    c.tick()
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.reason) == ("failed", "timed out after 10m00s")


def test_a_timeout_is_measured_on_the_timer_not_on_a_clock_that_is_set(tmp_path: Path) -> None:
    """The clock set an hour forward (NTP, an operator) kills nothing; set back, it lets
    nothing run past its timeout: the monotonic timer decides."""
    store = applied(
        tmp_path,
        node(
            "a", command=["hang"], run={"command": ["hang"], "timeout": "10m"}, resourceGroup="rg"
        ),
        backfill(),
    )
    clock, timer = Clock(), Clock()
    c = controller(store, FakeBackend(), clock, timer)
    c.tick()
    clock.now += 3600
    c.tick()
    c.tick()
    assert store.instances()[0].state == "running"
    clock.now -= 7200
    timer.now += 601
    c.tick()
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.reason) == ("failed", "timed out after 10m00s")


def test_stop_ends_a_running_instance_as_failed_without_retry(tmp_path: Path) -> None:
    store = applied(
        tmp_path, node("a", run={"command": ["hang"], "retries": 3}, resourceGroup="rg"), backfill()
    )
    c = controller(store)
    c.tick()
    result = operate(store, "stop", store.instances(), actor="alice", at=NOW.timestamp())
    assert len(result.done) == 1
    c.tick()
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.reason, a.attempts) == ("failed", "stopped by alice", 1)


def test_a_stop_read_before_its_event_is_still_told_by_whom(tmp_path: Path) -> None:
    """`stop backfill` writes the backfill's event, then each instance's flag and event:
    a tick whose news held only the first, but which read an instance after the second
    committed, finds who stopped it in the store, not "an operator"."""
    store = applied(
        tmp_path, node("a", run={"command": ["hang"], "retries": 3}, resourceGroup="rg"), backfill()
    )
    c = controller(store)
    c.tick()
    news = c._news()
    operate(store, "stop", store.instances(), actor="alice", at=NOW.timestamp())
    (record,) = store.instances()
    c._sync_instance(record, news, set())  # (the news read before the stop committed)
    c.tick()
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.reason) == ("failed", "stopped by alice")


def test_operators_changes_are_picked_up(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    c = controller(store)
    operate(
        store,
        "freeze",
        [i for i in store.instances() if i.node == "a"],
        actor="op",
        at=NOW.timestamp(),
    )
    drain(c, 5)
    assert states(store) == {"a@01": "frozen", "b@01": "pending"}
    assert c.scheduler.finished() == []  # frozen: paused, not finished
    operate(store, "unfreeze", store.instances(states=["frozen"]), actor="op", at=NOW.timestamp())
    drain(c)
    assert set(states(store).values()) == {"succeeded"}


def test_dry_run_instances_succeed_at_once_in_order(tmp_path: Path) -> None:
    store = applied(
        tmp_path,
        *CHAIN,
        node("c", upstream=["b"], resourceGroup="rg"),
        backfill(select={"method": "descendants", "roots": ["a"], "block": ["b"]}),
    )
    backend = FakeBackend()
    drain(controller(store, backend))
    b = next(i for i in store.instances() if i.node == "b")
    assert (b.state, b.reason, b.attempts) == ("succeeded", "dry-run: nothing was executed", 0)
    assert [s.node for s in backend.started] == ["a", "c"]


def test_an_apply_while_the_controller_runs_is_picked_up(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    c = controller(store)
    drain(c)
    specs = specs_of(
        workspace(), resource_group("rg", 2), *CHAIN, backfill(dates=["2024-03-01", "2024-03-02"])
    )
    plan, _ = make_plan(specs, NOW, None)
    at = NOW.timestamp()
    changes = reconcile.diff(reconcile.desired(specs, plan, None, at), store, prune=False)
    assert sum(len(x.create) for x in changes.backfills) == 2
    reconcile.apply(store, changes, specs, at=at, actor="test", origin="apply")
    drain(c)
    assert len(store.instances(states=["succeeded"])) == 4


def _apply(store: StateStore, tmp_path: Path, *docs: dict[str, Any], prune: bool = False) -> None:
    """Apply `docs` as another process would (origin apply), as ann."""
    specs = specs_of(workspace(), resource_group("rg", 2), *docs)
    plan, _ = make_plan(specs, NOW, None)
    at = NOW.timestamp()
    found = reconcile.diff(reconcile.desired(specs, plan, None, at), store, prune=prune)
    reconcile.apply(store, found, specs, at=at, actor="ann", origin="apply")


@pytest.mark.parametrize("removal", ["delete", "prune"])
def test_instances_applied_again_after_a_delete_or_prune_run(tmp_path: Path, removal: str) -> None:
    """The controller knew them cancelled; the apply that brings them back is news (the
    backfill's apply, their transitions), and they run."""
    store = applied(tmp_path, *CHAIN, backfill())
    c = controller(store)
    if removal == "delete":
        delete_backfill(store, "bf", actor=None, by=lambda _: "root", clock=Clock())
    else:
        _apply(store, tmp_path, *CHAIN, prune=True)
    drain(c, 3)
    assert set(states(store).values()) == {"cancelled"}
    before = store.last_event_id()

    _apply(store, tmp_path, *CHAIN, backfill())

    assert [(e.kind, e.from_state, e.to_state) for e in store.events(after=before)] == [
        ("transition", "cancelled", "pending"),
        ("transition", "cancelled", "pending"),
        ("applied", None, None),
    ]
    drain(c)
    assert set(states(store).values()) == {"succeeded"}


def test_an_instance_a_catalog_edit_brings_back_runs(tmp_path: Path) -> None:
    """Its backfill's document and access unchanged, the apply writes no event of the
    backfill: the instance's own transition is what the controller reads."""
    days = backfill(dates=["2024-03-01", "2024-03-02"])
    cut = node("b", upstream=["a"], resourceGroup="rg", effective={"from": "2024-03-03"})
    store = applied(tmp_path, *CHAIN, days)
    c = controller(store)
    _apply(store, tmp_path, CHAIN[0], cut, days)  # b of 03-01: no longer planned
    c.tick()
    assert states(store)["b@01"] == "cancelled"
    before = store.last_event_id()

    _apply(store, tmp_path, *CHAIN, days)

    assert [(e.kind, e.from_state, e.to_state) for e in store.events(after=before)] == [
        ("transition", "cancelled", "pending")
    ]
    drain(c)
    assert set(states(store).values()) == {"succeeded"}


# -- restarts and the lease ----------------------------------------------------------


class Recovering(FakeBackend):
    """A backend that finds attempts started by a controller that is gone."""

    def __init__(self, found: dict[str, Any] | None, outcome: Outcome | None) -> None:
        super().__init__()
        self.found, self.outcome_after = found, outcome

    def recover(self, spec: AttemptSpec, begun: dict[str, Any]) -> dict[str, Any] | None:
        return self.found

    def poll(self, running: Any) -> dict[Any, Outcome]:
        return dict.fromkeys(running, self.outcome_after) if self.outcome_after else {}


def crashed_after_begin(tmp_path: Path) -> StateStore:
    """A store as a controller left it when it died between recording and starting."""
    store = applied(tmp_path, node("a", resourceGroup="rg"), backfill())
    (a,) = store.instances()
    assert (
        store.begin_attempt(a.id, "fake", at=NOW.timestamp(), actor="controller", origin="old") == 1
    )
    return store


def test_an_attempt_that_never_started_is_put_back_and_run_once(tmp_path: Path) -> None:
    store = crashed_after_begin(tmp_path)
    backend = Recovering(None, None)
    c = Controller(store, backend, clock=Clock())
    assert c.acquire(wait=False)
    c.load()
    (a,) = store.instances()
    assert (a.state, a.tries_left) == ("pending", 1)
    assert [x.state for x in store.attempts()] == ["lost"]


def test_an_attempt_that_did_start_is_adopted_not_run_again(tmp_path: Path) -> None:
    store = crashed_after_begin(tmp_path)
    backend = Recovering({"pid": 1}, Outcome("succeeded", 0))
    c = Controller(store, backend, clock=Clock())
    assert c.acquire(wait=False)
    c.load()
    assert list(c.running) == [store.instances()[0].id]
    c.tick()
    assert backend.started == []  # adopted, never started again
    (a,) = store.instances()
    assert (a.state, a.attempts) == ("succeeded", 1)


def test_a_second_controller_waits_for_the_lease(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    first = controller(store)
    other = open_store(where(store))  # the same store, a second connection
    said: list[str] = []
    second = Controller(other, FakeBackend(), clock=Clock(), say=said.append)
    assert second.acquire(wait=False) is False
    first.release()
    assert second.acquire(wait=False) is True


def test_the_lease_of_a_dead_controller_on_this_host_is_taken_over(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    dead = 2**22 + 12345  # no such pid
    store.acquire_lease("gone", pid=dead, host=this_host(), at=time.time(), ttl=3600)
    said: list[str] = []
    c = Controller(store, FakeBackend(), clock=Clock(), say=said.append)
    assert c.acquire(wait=False)
    assert said == [f"taking over the lease of a controller that is gone (pid {dead})"]


@pytest.mark.parametrize(
    "host",
    [
        "elsewhere",  # another machine: its pids mean nothing here
        socket.gethostname(),  # this name, but another pid namespace (a container)
        this_host().replace("#", "#0"),  # the same name on another boot or namespace
    ],
)
def test_a_holder_on_another_host_is_waited_for_until_its_lease_expires(
    tmp_path: Path, host: str
) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    dead_here = 2**22 + 12345  # no such pid on this host: maybe a live one on the other
    store.acquire_lease("far", pid=dead_here, host=host, ttl=0.5)
    c = Controller(store, FakeBackend(), clock=Clock())
    assert c.acquire(wait=False) is False
    time.sleep(0.6)  # its lease expired (by the store's clock)
    assert c.acquire(wait=False) is True
    assert store.lease().epoch == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("pid", [os.getpid()])
def test_a_live_holder_on_this_host_keeps_the_lease(tmp_path: Path, pid: int) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    store.acquire_lease("alive", pid=pid, host=this_host(), at=time.time(), ttl=3600)
    assert Controller(store, FakeBackend(), clock=Clock()).acquire(wait=False) is False


class QuotaBackend(FakeBackend):
    """Refuses to start anything while `full`, as a namespace quota would."""

    def __init__(self) -> None:
        super().__init__()
        self.full = True
        self.refused = 0

    def start(self, spec: AttemptSpec) -> tuple[dict[str, Any], str | None]:
        if self.full:
            self.refused += 1
            raise NotStarted("quota full", state="waiting-for-resources", retry_after=30)
        return super().start(spec)


def test_an_attempt_the_backend_did_not_start_waits_and_costs_no_try(tmp_path: Path) -> None:
    store = applied(
        tmp_path, node("a", resourceGroup="rg"), backfill(dates=["2024-03-01", "2024-03-02"])
    )
    clock = Clock()
    backend = QuotaBackend()
    said: list[str] = []
    c = Controller(store, backend, clock=clock, timer=clock, say=said.append)
    assert c.acquire(wait=False)
    c.load()

    c.tick()
    c.tick()  # held: nothing is tried again yet

    assert backend.refused == 1
    a1 = store.instances(bizdate="2024-03-01")[0]
    assert (a1.state, a1.reason, a1.attempts, a1.tries_left) == (
        "waiting-for-resources",
        "quota full",
        0,
        1,
    )
    assert store.attempts() == []  # an attempt that never started is not kept
    assert said == ["the backend started nothing: quota full (trying again in 30s)"]
    assert store.events(instance=a1.id)[-1].kind == "not-started"

    backend.full = False
    clock.now += 31
    drain(c)
    assert set(states(store).values()) == {"succeeded"}
    assert [a.number for a in store.attempts()] == [1, 1]


def test_a_runs_directory_turned_into_a_symlink_starts_nothing_and_costs_no_try(
    tmp_path: Path,
) -> None:
    """A runs directory made a symlink behind the controller's back (apply --wait and
    `controller` refuse one before they start: tests/cli/test_apply.py): the real local
    backend writes nothing through it, the controller says why, and the instance waits
    (pending, no try counted): no failed run that never happened."""
    store = applied(tmp_path, node("a", command=["touch", "ran"], resourceGroup="rg"), backfill())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "state" / "runs").parent.mkdir()
    (tmp_path / "state" / "runs").symlink_to(elsewhere)
    said: list[str] = []
    backend = make_backend("local", BackendContext(tmp_path / "state", store_id=store.store_id))
    c = Controller(store, backend, clock=Clock(), say=said.append)
    try:
        assert c.acquire(wait=False)
        c.load()
        c.tick()
    finally:
        backend.close()

    (a,) = store.instances()
    assert (a.state, a.attempts, a.tries_left) == ("pending", 0, 1)
    assert a.reason is not None and "is a symlink, not a directory" in a.reason
    assert store.attempts() == []
    assert said == [
        f"the backend started nothing: {tmp_path / 'state' / 'runs'} is a symlink, not a "
        "directory: refusing to use it; remove it (backfillctl makes it again, private to "
        "this user) (trying again in 30s)"
    ]
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "ran").exists()


def test_the_wait_after_a_start_the_backend_refused_is_measured_on_the_timer(
    tmp_path: Path,
) -> None:
    """The clock set an hour back right after the backend said "not now, for 30 s" holds
    the starts back 30 s, not an hour and 30 s."""
    store = applied(tmp_path, node("a", resourceGroup="rg"), backfill(dates=["2024-03-01"]))
    clock, timer = Clock(), Clock()
    backend = QuotaBackend()
    c = controller(store, backend, clock, timer)
    c.tick()
    assert backend.refused == 1
    backend.full = False
    clock.now -= 3600
    timer.now += 31
    drain(c)
    assert set(states(store).values()) == {"succeeded"}


def test_a_retry_s_delay_is_measured_on_the_timer(tmp_path: Path) -> None:
    """The clock set an hour back right after an attempt failed holds its retry back
    `retryDelay` (30 s) on the timer, not an hour and 30 s; one set forward an hour does
    not start it sooner. `describe` says until when it waits, on the clock."""
    store = applied(
        tmp_path,
        node("a", run={"command": ["false"], "retries": 2}, resourceGroup="rg"),
        backfill(),
    )
    clock, timer = Clock(), Clock()
    c = controller(store, FakeBackend(lambda spec: 1), clock, timer)
    c.tick()  # attempt 1 starts
    c.tick()  # and fails: the retry waits
    clock.now -= 3600
    timer.now += 10
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.attempts) == ("waiting-for-time", 1)
    assert (
        a.reason
        == f"retrying at {datetime.fromtimestamp(clock.now + 20, UTC):%Y-%m-%d %H:%M:%S %z}"
    )
    timer.now += 21
    clock.now += 21
    c.tick()
    c.tick()
    assert store.instances()[0].attempts == 2
    c.tick()  # attempt 2 failed: the second retry waits 30 s on the timer
    clock.now += 3600
    c.tick()
    assert store.instances()[0].attempts == 2
    timer.now += 31
    c.tick()
    assert store.instances()[0].attempts == 3


def test_a_retry_delay_recorded_on_another_clock_waits_at_most_retry_delay(
    tmp_path: Path,
) -> None:
    """A controller started with --now a year ahead recorded the retry's time on its
    clock; the next one, on the wall clock, waits at most `retryDelay` from when it
    loaded it, not a year."""
    store = applied(
        tmp_path,
        node("a", run={"command": ["false"], "retries": 1}, resourceGroup="rg"),
        backfill(),
    )
    ahead = Clock()
    ahead.now += 365 * 86400
    first = controller(store, FakeBackend(lambda spec: 1), ahead)
    first.tick()
    first.tick()
    first.release()
    assert store.instances()[0].not_before == ahead.now + 30
    clock = Clock()
    second = controller(store, FakeBackend(lambda spec: 1), clock)
    second.tick()
    (a,) = store.instances()
    assert (a.state, a.attempts) == ("waiting-for-time", 1)
    assert (
        a.reason
        == f"retrying at {datetime.fromtimestamp(clock.now + 30, UTC):%Y-%m-%d %H:%M:%S %z}"
    )
    clock.now += 31
    second.tick()
    assert store.instances()[0].attempts == 2
