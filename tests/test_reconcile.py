"""apply's diff by instance id (DESIGN §7): create, update, cancel, keep, prune, collected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backfill_ctl import reconcile
from backfill_ctl.planning import make_plan
from backfill_ctl.state import StateStore, open_store
from tests.builders import NOW, backfill, node, specs_of, workspace

AT = NOW.timestamp()


def changes(
    store: StateStore, *docs: dict[str, Any], prune: bool = False, apply: bool = True
) -> reconcile.Changes:
    specs = specs_of(workspace(), *docs)
    plan, diagnostics = make_plan(specs, NOW, None)
    assert not [d for d in diagnostics if d.is_error]
    found = reconcile.diff(reconcile.desired(specs, plan, "/repo", None, AT), store, prune=prune)
    if apply:
        reconcile.apply(store, found, specs, at=AT, actor="tester", origin="apply")
    return found


def counts(c: reconcile.Changes) -> tuple[int, int, int, int]:
    return c.totals()


TWO_DAYS = [{"from": "2024-03-01", "to": "2024-03-02"}]


def test_the_first_apply_creates_everything_and_the_second_changes_nothing(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "s.db")
    first = changes(store, node("a"), backfill(dates=TWO_DAYS))
    assert counts(first) == (2, 0, 0, 0)
    assert first.summary(done=True) == (
        "Apply complete: 2 created, 0 updated, 0 cancelled; 0 kept as they ran."
    )
    again = changes(store, node("a"), backfill(dates=TWO_DAYS))
    assert again.empty
    assert again.summary(done=True) == "No changes: the state store matches the specs."
    assert [i.run.env["BACKFILL_BIZDATE"] for i in store.instances()] == ["20240301", "20240302"]
    assert {i.run.cwd for i in store.instances()} == {"/repo"}


def test_dates_removed_cancel_what_has_not_started_and_keep_what_has(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill(dates=[{"from": "2024-03-01", "to": "2024-03-03"}]))
    first, second, _ = store.instances()
    store.begin_attempt(first.id, "fake", at=AT, actor="c", origin="c")  # started
    store.transition([second.id], "frozen", allowed=["pending"], at=AT, actor="o", origin="o")
    found = changes(store, node("a"), backfill(dates=["2024-03-03"]))
    # The frozen one is cancelled, the running one kept; 03-03 is now the only date of
    # its group, so its sequence (a part of its definition) changes: an update.
    assert counts(found) == (0, 1, 1, 1)
    assert reconcile.render(found) == ["~ backfill/bf: +0 ~1 -1, 1 kept as they ran"]
    by_date = {i.bizdate: i.state for i in store.instances()}
    assert by_date == {"2024-03-01": "running", "2024-03-02": "cancelled", "2024-03-03": "pending"}


def test_a_changed_definition_updates_instances_that_have_not_started_or_failed(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill(dates=[{"from": "2024-03-01", "to": "2024-03-03"}]))
    failed, ok, waiting = store.instances()
    for i, state in ((failed, "failed"), (ok, "succeeded")):
        n = store.begin_attempt(i.id, "fake", at=AT, actor="c", origin="c")
        assert n is not None
        store.end_attempt(
            i.id,
            n,
            attempt_state=state,
            exit_code=0,
            message=None,
            instance_state=state,
            at=AT,
            actor="c",
            origin="c",
        )
    fixed = node("a", command=["run", "fixed"])
    found = changes(store, fixed, backfill(dates=[{"from": "2024-03-01", "to": "2024-03-03"}]))
    assert counts(found) == (0, 2, 0, 0)
    commands = {i.id: (i.state, i.run.command) for i in store.instances()}
    assert commands == {
        failed.id: ("failed", ("run", "fixed")),  # a rerun runs the fix
        ok.id: ("succeeded", ("run", "a", "20240302")),  # as it ran
        waiting.id: ("pending", ("run", "fixed")),
    }


def test_a_cancelled_instance_that_is_wanted_again_comes_back(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill(dates=TWO_DAYS))
    changes(store, node("a"), backfill(dates=["2024-03-01"]))
    assert [i.state for i in store.instances()] == ["pending", "cancelled"]
    found = changes(store, node("a"), backfill(dates=TWO_DAYS))
    assert counts(found) == (0, 1, 0, 0)
    assert [i.state for i in store.instances()] == ["pending", "pending"]


def test_a_backfill_gone_from_the_specs_is_kept_unless_pruned(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill("old"), backfill("keep"))
    left = changes(store, node("a"), backfill("keep"))
    assert left.empty
    assert reconcile.render(left)[-1] == (
        "! backfill/old: no longer in the specs; --prune cancels its 1 instance(s) that have "
        "not started"
    )
    pruned = changes(store, node("a"), backfill("keep"), prune=True)
    assert counts(pruned) == (0, 0, 1, 0)
    old = store.backfill("old")
    assert old is not None and old.status == "deleted"
    assert [b.name for b in store.backfills()] == ["keep"]


def test_changed_settings_rewrite_the_backfill_record(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill())
    found = changes(store, node("a"), backfill(suspend=True))
    assert [c.status for c in found.backfills] == ["changed"]
    record = store.backfill("bf")
    assert record is not None and record.suspended


def test_a_collected_backfill_is_not_run_again_unless_its_spec_changes(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill())
    (i,) = store.instances()
    # As gc leaves it: the instances gone, the record marked collected.
    store.update_backfill("bf", at=AT, actor="gc", origin="gc", status="collected")
    store.transition([i.id], "cancelled", allowed=["pending"], at=AT, actor="t", origin="t")
    same = changes(store, node("a"), backfill(), apply=False)
    assert same.empty and [c.status for c in same.backfills] == ["collected"]
    assert reconcile.render(same) == [
        "  backfill/bf: ran to the end and was collected by gc; change its spec to run it again"
    ]
    edited = changes(store, node("a"), backfill(dates=["2024-03-02"]))
    assert counts(edited)[0] == 1
    record = store.backfill("bf")
    assert record is not None and record.status == "active"


def test_dry_runs_and_resource_groups_are_part_of_the_definition(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    docs = (node("a"), node("b", upstream=["a"], resourceGroup="etl"), node("c", upstream=["b"]))
    from tests.builders import resource_group

    changes(
        store,
        resource_group("etl"),
        *docs,
        backfill(select={"method": "descendants", "roots": ["a"], "block": ["b"]}),
    )
    by_node = {i.node: i for i in store.instances()}
    assert by_node["b"].dry_run_reason == "blocklisted"
    assert (by_node["a"].resource_group, by_node["b"].resource_group) == ("default", "etl")
    assert store.resource_groups() == {"etl": ("shared", 4)}
