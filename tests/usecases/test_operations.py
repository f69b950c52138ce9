"""The operations' rules on a real store: what each applies to, what it refuses and why,
what it records, and that a finished backfill they touch is reopened."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.core.records import STATES
from backfill_ctl.state import StateStore, open_store
from backfill_ctl.usecases.backfill_ops import delete_backfill
from backfill_ctl.usecases.operations import RULES, descendants, operate
from tests.builders import backfill, node
from tests.running import NOW, applied, controller, drain, states, where

AT = NOW.timestamp()
CHAIN = (
    node("a", resourceGroup="rg", run={"command": ["run", "a"], "retries": 2}),
    node("b", upstream=["a"], resourceGroup="rg"),
    node("c", upstream=["b"], resourceGroup="rg"),
)


def failed_at_b(tmp_path: Path) -> StateStore:
    """a succeeded, b failed, c pending behind it; the backfill finished as failed."""
    store = applied(tmp_path, *CHAIN, backfill())
    c = controller(store, FakeBackend(lambda spec: 1 if spec.node == "b" else 0))
    drain(c)
    c.release()
    assert states(store) == {"a@01": "succeeded", "b@01": "failed", "c@01": "pending"}
    return store


def by_node(store: StateStore, name: str) -> list:  # type: ignore[type-arg]
    return store.instances(node=name)


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_operation_refuses_every_state_it_does_not_apply_to(tmp_path: Path, name: str) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    (one,) = by_node(store, "a")
    rule = RULES[name]
    for state in STATES:
        if state in rule.allowed:
            continue
        store.transition([one.id], state, allowed=STATES, at=AT, actor="t", origin="t")
        result = operate(store, name, by_node(store, "a"), actor="op", at=AT)
        assert result.done == []
        assert result.refused == [(one.id, rule.refusal(name, state))]
        assert store.instances(ids=[one.id])[0].state == state  # untouched


def test_refusal_messages_say_what_the_operation_applies_to() -> None:
    assert RULES["rerun"].refusal("rerun", "running") == (
        "cannot rerun: it is running (rerun applies to failed or succeeded instances)"
    )
    assert RULES["freeze"].refusal("freeze", "succeeded") == (
        "cannot freeze: it is succeeded (freeze applies to failed or pending instances)"
    )


def test_an_instance_that_changed_meanwhile_is_refused_not_trampled(tmp_path: Path) -> None:
    store = failed_at_b(tmp_path)
    seen = by_node(store, "b")  # read as failed ...
    store.transition([seen[0].id], "succeeded", allowed=["failed"], at=AT, actor="x", origin="t")

    result = operate(store, "freeze", seen, actor="op", at=AT)  # ... acted on as succeeded

    assert result.done == []
    assert result.refused == [(seen[0].id, "cannot freeze: its state changed meanwhile")]
    assert by_node(store, "b")[0].state == "succeeded"


def test_rerun_restores_the_tries_and_runs_now_ignoring_dependencies(tmp_path: Path) -> None:
    store = failed_at_b(tmp_path)
    a = by_node(store, "a")[0]
    assert a.tries_left < 3

    result = operate(store, "rerun", [a], actor="op", at=AT + 5)

    after = store.instances(ids=[a.id])[0]
    assert result.done == [a.id]
    assert (after.state, after.tries_left, after.ignore_deps) == ("pending", 3, True)
    assert after.finished_at is None
    event = store.events(instance=a.id)[-1]
    assert (event.at, event.actor, event.kind, event.from_state, event.to_state) == (
        AT + 5,
        "op",
        "rerun",
        "succeeded",
        "pending",
    )
    assert event.message == "rerun by op"


def test_rerun_with_descendants_reruns_what_depends_on_it_after_it(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    drain(controller(store))
    a = by_node(store, "a")[0]
    assert [i.node for i in descendants(store, [a])] == ["b", "c"]

    result = operate(store, "rerun", [a], actor="op", at=AT, with_descendants=True)

    assert len(result.done) == 3
    rerun = {i.node: i for i in store.instances()}
    assert {n: (i.state, i.ignore_deps) for n, i in rerun.items()} == {
        "a": ("pending", True),  # starts now
        "b": ("pending", False),  # waits for a again
        "c": ("pending", False),
    }
    assert store.events(instance=rerun["b"].id)[-1].message == "rerun as a descendant by op"


def test_set_success_finishes_the_instance_and_lets_its_dependents_go(tmp_path: Path) -> None:
    store = failed_at_b(tmp_path)
    b = by_node(store, "b")[0]
    assert operate(store, "set-success", [b], actor="op", at=AT + 1).done == [b.id]
    after = store.instances(ids=[b.id])[0]
    assert (after.state, after.finished_at) == ("succeeded", AT + 1)
    c = controller(store)
    drain(c)
    assert states(store)["c@01"] == "succeeded"


def test_freeze_blocks_dependents_until_unfreeze(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    b = by_node(store, "b")[0]
    assert operate(store, "freeze", [b], actor="op", at=AT).done == [b.id]
    c = controller(store)
    drain(c, ticks=5)
    assert states(store) == {"a@01": "succeeded", "b@01": "frozen", "c@01": "pending"}
    record = store.backfill("bf")
    assert record is not None and record.finished_at is None  # frozen is not an end
    assert operate(store, "unfreeze", by_node(store, "b"), actor="op", at=AT).done == [b.id]
    drain(c)
    assert set(states(store).values()) == {"succeeded"}


def test_stop_asks_the_controller_to_kill_and_keeps_the_state_running(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    a = by_node(store, "a")[0]
    store.transition([a.id], "running", allowed=["pending"], at=AT, actor="t", origin="t")
    result = operate(store, "stop", by_node(store, "a"), actor="op", at=AT)
    after = store.instances(ids=[a.id])[0]
    assert result.done == [a.id]
    assert (after.state, after.stop_requested) == ("running", True)


@pytest.mark.parametrize("name", ["rerun", "set-success", "freeze"])
def test_an_operation_on_a_finished_backfill_reopens_it(tmp_path: Path, name: str) -> None:
    store = failed_at_b(tmp_path)
    before = store.backfill("bf")
    assert before is not None and before.outcome == "failed" and before.finished_at is not None

    operate(store, name, by_node(store, "b"), actor="op", at=AT + 9)

    after = store.backfill("bf")
    assert after is not None
    assert (after.finished_at, after.outcome, after.notified_at) == (None, None, None)
    last = [e for e in store.events(backfill="bf") if e.instance is None][-1]
    assert (last.at, last.actor, last.message) == (AT + 9, "op", f"reopened: {name} by op")


def test_a_refused_operation_does_not_reopen_the_backfill(tmp_path: Path) -> None:
    store = failed_at_b(tmp_path)
    result = operate(store, "unfreeze", by_node(store, "b"), actor="op", at=AT)
    assert result.done == []
    record = store.backfill("bf")
    assert record is not None and record.outcome == "failed"


def test_a_stopped_backfill_is_resumed_by_any_operation_but_stop(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill())
    store.update_backfill("bf", at=AT, actor="op", origin="cli", status="stopped")
    a = by_node(store, "a")[0]
    store.transition([a.id], "running", allowed=["pending"], at=AT, actor="t", origin="t")

    operate(store, "stop", by_node(store, "a"), actor="op", at=AT)
    record = store.backfill("bf")
    assert record is not None and record.status == "stopped"

    operate(store, "freeze", by_node(store, "b"), actor="op", at=AT + 1)
    record = store.backfill("bf")
    assert record is not None and record.status == "active"
    last = [e for e in store.events(backfill="bf") if e.instance is None][-1]
    assert last.message == "resumed: freeze by op"


def test_a_backfill_deleted_meanwhile_changes_nothing_of_what_an_operation_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete (another connection) lands between the rerun's check of the backfill and
    its transition. Before, the rerun went on: a succeeded instance of a deleted backfill
    back to pending, which nothing runs. Now the delete waits for the rerun's transaction
    and then cancels what the rerun made pending."""
    store = applied(tmp_path, *CHAIN, backfill(), sqlite=True)
    c = controller(store)
    drain(c)
    c.release()
    other = open_store(where(store))
    move = store.transition
    racers: list[threading.Thread] = []

    def transition(*args: Any, **kw: Any) -> list[str]:
        if not racers:
            racer = threading.Thread(
                target=delete_backfill,
                args=(other, "bf"),
                kwargs={"actor": None, "by": lambda _: "root", "clock": lambda: AT},
            )
            racers.append(racer)
            racer.start()
            racer.join(timeout=0.5)  # it waits for the rerun's transaction, or is done
        return move(*args, **kw)

    monkeypatch.setattr(store, "transition", transition)
    (a,) = by_node(store, "a")

    result = operate(store, "rerun", [a], actor="ops", at=AT)
    racers[0].join()

    monkeypatch.undo()
    record = store.backfill("bf")
    assert record is not None and record.status == "deleted"
    assert result.done == [a.id]
    assert [e.kind for e in store.events(instance=a.id)][-2:] == ["rerun", "delete"]
    assert by_node(store, "a")[0].state == "cancelled"  # not pending in a deleted backfill
    other.close()
