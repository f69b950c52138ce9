"""apply's diff by instance id (DESIGN §7): create, update, cancel, keep, prune, collected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backfill_ctl.state import StateStore, open_store
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.plan import make_plan
from tests.builders import NOW, backfill, node, specs_of, workspace

AT = NOW.timestamp()


def changes(
    store: StateStore, *docs: dict[str, Any], prune: bool = False, apply: bool = True
) -> reconcile.Changes:
    specs = specs_of(workspace(), *docs)
    plan, diagnostics = make_plan(specs, NOW, None)
    assert not [d for d in diagnostics if d.is_error]
    found = reconcile.diff(reconcile.desired(specs, plan, None, AT), store, prune=prune)
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
    # No checkout's path: commands run in the spec root of whoever runs them.
    assert {i.run.working_dir for i in store.instances()} == {"."}


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


def test_an_instance_started_since_the_diff_is_kept_and_reported_kept_not_cancelled(
    tmp_path: Path,
) -> None:
    """The diff read it waiting; it started before the apply's transaction: the store
    keeps it (and records no cancel), and the summary says so."""
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill("old"), backfill(dates=TWO_DAYS))
    found = changes(store, node("a"), backfill(dates=["2024-03-01"]), prune=True, apply=False)
    assert counts(found) == (0, 0, 2, 0)
    late = store.instances(backfill="bf", bizdate="2024-03-02")[0]
    store.begin_attempt(late.id, "fake", at=AT, actor="c", origin="c")  # a controller, meanwhile
    specs = specs_of(workspace(), node("a"), backfill(dates=["2024-03-01"]))

    reconcile.apply(store, found, specs, at=AT, actor="tester", origin="apply")

    assert counts(found) == (0, 0, 1, 1)
    assert found.summary(done=True) == (
        "Apply complete: 0 created, 0 updated, 1 cancelled; 1 kept as they ran."
    )
    assert store.instances(ids=[late.id])[0].state == "running"
    assert [e.to_state for e in store.events(instance=late.id)] == ["pending", "running"]


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


def test_a_pruned_backfill_s_started_instances_are_reported_kept_as_they_ran(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill("old", dates=TWO_DAYS), backfill("keep"))
    first = min(i.id for i in store.instances(backfill="old"))
    assert store.begin_attempt(first, "local", at=AT, actor="c", origin="c") == 1

    pruned = changes(store, node("a"), backfill("keep"), prune=True)

    assert counts(pruned) == (0, 0, 1, 1)
    assert reconcile.render(pruned)[-1] == "- backfill/old: +0 ~0 -1, 1 kept as they ran"
    assert store.instances(ids=[first])[0].state == "running"


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


# -- issue 8, item 8: instance identity survives edits; a finished backfill is history ---

FOUR_DAYS = [{"from": "2024-03-01", "to": "2024-03-04"}]


def end(store: StateStore, instance: str, state: str = "succeeded") -> None:
    n = store.begin_attempt(instance, "fake", at=AT, actor="c", origin="c")
    assert n is not None
    store.end_attempt(
        instance,
        n,
        attempt_state=state,
        exit_code=0 if state == "succeeded" else 1,
        message=None,
        instance_state=state,
        at=AT,
        actor="c",
        origin="c",
    )


def finish(store: StateStore, outcome: str = "succeeded") -> None:
    """What the controller records when a backfill can make no more progress."""
    store.update_backfill("bf", at=AT, actor="c", origin="c", finished_at=AT, outcome=outcome)


def slots_held(store: StateStore) -> dict[tuple[str, str], int]:
    held: dict[tuple[str, str], int] = {}
    for i in store.instances():
        held[i.node, i.bizdate] = held.get((i.node, i.bizdate), 0) + 1
    return held


def test_a_moved_cron_time_moves_the_instances_that_have_not_started(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a", "30 2 * * *"), node("b", upstream=["a"]), backfill(dates=FOUR_DAYS))
    before = {i.id: i.state for i in store.instances()}
    first = store.instances(node="a", bizdate="2024-03-01")[0]
    end(store, first.id)

    moved = changes(
        store, node("a", "45 2 * * *"), node("b", upstream=["a"]), backfill(dates=FOUR_DAYS)
    )

    assert counts(moved) == (0, 3, 0, 0)
    assert reconcile.render(moved) == [
        "~ backfill/bf: +0 ~3 -0, 3 of a move 02:30->02:45, 1 of a ran at 02:30 (planned now "
        "at 02:45)"
    ]
    assert {i.id: i.state for i in store.instances()} == {**before, first.id: "succeeded"}
    times = {(i.bizdate, i.cyctime[11:16]) for i in store.instances(node="a")}
    assert times == {
        ("2024-03-01", "02:30"),  # as it ran
        ("2024-03-02", "02:45"),
        ("2024-03-03", "02:45"),
        ("2024-03-04", "02:45"),
    }


def test_a_finished_backfill_is_left_as_it_ran_by_a_catalog_edit(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a", "30 2 * * *"), backfill(dates=FOUR_DAYS))
    for i in store.instances():
        end(store, i.id)
    finish(store)
    stored = store.instances()

    # Another time, and a second tick a day: a new slot on every date.
    edited = changes(store, node("a", "30 2,14 * * *"), backfill(dates=FOUR_DAYS))

    assert edited.empty and [c.status for c in edited.backfills] == ["finished"]
    assert store.instances() == stored
    assert reconcile.render(edited) == [
        "  backfill/bf: finished (succeeded), left as it ran: 4 instance(s) the specs now plan "
        "are not added; rerun its instances, or edit the Backfill, to run it again"
    ]
    assert edited.summary(done=True) == "No changes: finished backfills are left as they ran."
    # A change to the Backfill itself plans it afresh: the new slots are added.
    changed = changes(
        store, node("a", "30 2,14 * * *"), backfill(dates=FOUR_DAYS, order="descending")
    )
    assert counts(changed) == (4, 0, 0, 0)
    record = store.backfill("bf")
    assert record is not None and record.finished_at is None


def test_a_failed_finished_backfill_takes_the_fix_but_starts_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), node("b", upstream=["a"]), backfill(dates=["2024-03-01"]))
    a, b = store.instances(node="a")[0], store.instances(node="b")[0]
    end(store, a.id, "failed")
    finish(store, "failed")

    fixed = changes(
        store,
        node("a", command=["run", "fixed"]),
        node("b", upstream=["a"]),
        node("c", upstream=["a"]),  # a new node: a new instance, not added
        backfill(dates=["2024-03-01"]),
    )

    assert counts(fixed) == (0, 1, 0, 0)
    assert reconcile.render(fixed) == [
        "~ backfill/bf: finished (failed), left as it ran: 1 instance(s) the specs now plan are "
        "not added; ~1 failed or not started take the new definition; rerun its instances, or "
        "edit the Backfill, to run it again; who may operate it changed"  # c is in scope
    ]
    states = {i.id: (i.state, i.run.command) for i in store.instances()}
    assert states == {
        a.id: ("failed", ("run", "fixed")),  # a rerun runs the fix
        b.id: ("pending", ("run", "b", "20240301")),
    }


def apply_specs(store: StateStore, *docs: dict[str, Any]) -> tuple[reconcile.Changes, Any]:
    specs = specs_of(*docs)
    plan, diagnostics = make_plan(specs, NOW, None)
    assert not [d for d in diagnostics if d.is_error]
    found = reconcile.diff(reconcile.desired(specs, plan, None, AT), store, prune=False)
    reconcile.apply(store, found, specs, at=AT, actor="t", origin="apply")
    return found, plan.backfills[0]


def test_a_backfill_never_holds_two_instances_of_one_node_slot(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    bf = backfill(dates=FOUR_DAYS)
    apply_specs(store, workspace(), node("a", "30 2 * * *"), node("b", upstream=["a"]), bf)
    ids = {i.id for i in store.instances()}
    end(store, store.instances(node="a", bizdate="2024-03-01")[0].id)
    for schedule, zone in [
        ("45 2 * * *", "UTC"),
        ("45 2 * * *", "Asia/Shanghai"),
        ("0 23 * * *", "Asia/Shanghai"),
        ("30 2 * * *", "UTC"),
    ]:
        found, bp = apply_specs(
            store, workspace(timezone=zone), node("a", schedule), node("b", upstream=["a"]), bf
        )
        assert counts(found)[0] == 0, schedule
        assert {i.id for i in store.instances()} == ids == {i.id for i in bp.instances}
        assert set(slots_held(store).values()) == {1}
        assert {i.state for i in store.instances()} == {"pending", "succeeded"}


def test_a_cron_with_more_ticks_a_day_keeps_the_instances_of_the_ticks_it_kept(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "s.db")
    bf = backfill(dates=FOUR_DAYS)
    apply_specs(store, workspace(), node("a", "30 2 * * *", command="run $taskid"), bf)
    before = {i.bizdate: i for i in store.instances()}
    end(store, before["2024-03-01"].id)

    found, bp = apply_specs(
        store, workspace(), node("a", "30 2,14 * * *", command="run $taskid"), bf
    )

    # 02:30 is tick 0 of 1 before and tick 0 of 2 now: other ids, the same instant. The
    # store keeps its instance (and id); the 14:30 ticks are new.
    assert counts(found) == (4, 0, 0, 0)
    assert not {i.id for i in store.instances()} & {
        i.id for i in bp.instances if i.cyctime.hour == 2
    }
    at_0230 = {i.bizdate: i for i in store.instances() if i.cyctime[11:16] == "02:30"}
    assert {d: i.id for d, i in at_0230.items()} == {d: i.id for d, i in before.items()}
    assert {i.run.command for i in at_0230.values()} == {f"run {i.id}" for i in before.values()}
    assert set(slots_held(store).values()) == {2}
    # And back: the 14:30 instances that have not started are cancelled, nothing is added.
    back, _ = apply_specs(store, workspace(), node("a", "30 2 * * *", command="run $taskid"), bf)
    assert counts(back) == (0, 0, 4, 0)
    assert {i.id for i in store.instances() if i.state != "cancelled"} == {
        i.id for i in before.values()
    }


LEGACY = "%Y-%m-%dT%H:%M:%SZ"


def legacy_id(backfill: str, node: str, cyctime: str) -> str:
    """The id backfillctl gave an instance before ids named slots: a hash of the UTC time."""
    import hashlib
    from datetime import UTC, datetime

    utc = datetime.fromisoformat(cyctime).astimezone(UTC).strftime(LEGACY)
    return hashlib.blake2b(f"{backfill}\x1f{node}\x1f{utc}".encode(), digest_size=8).hexdigest()


def test_a_store_applied_with_the_ids_of_earlier_versions_runs_nothing_twice(
    tmp_path: Path,
) -> None:
    docs = (workspace(), node("a", "30 2 * * *"), node("b", upstream=["a"]))
    specs = specs_of(*docs, backfill(dates=FOUR_DAYS))
    plan, _ = make_plan(specs, NOW, None)
    (wanted,) = reconcile.desired(specs, plan, None, AT)
    old = {i.id: legacy_id(i.backfill, i.node, i.cyctime) for i in wanted.instances}
    store = open_store(tmp_path / "s.db")  # as an earlier version left it
    store.save_apply([wanted.record], wanted.under(old), [], [], at=AT, actor="t", origin="t")
    for i in store.instances(node="a")[:2]:
        end(store, i.id)

    same, bp = apply_specs(store, *docs, backfill(dates=FOUR_DAYS))
    assert same.empty  # every instance is matched to the one stored for its slot
    assert {i.id for i in store.instances()} == set(old.values())
    # An edit after the upgrade moves the old instances, as it moves new ones.
    moved, _ = apply_specs(
        store, docs[0], node("a", "45 2 * * *"), docs[2], backfill(dates=FOUR_DAYS)
    )
    assert counts(moved) == (0, 2, 0, 0)
    assert reconcile.render(moved)[0].endswith(
        "2 of a move 02:30->02:45, 2 of a ran at 02:30 (planned now at 02:45)"
    )
    assert {i.id for i in store.instances()} == set(old.values())
    assert len(bp.instances) == len(store.instances())


def test_a_stopped_backfill_stays_stopped_when_its_specs_are_applied_again(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "s.db")
    changes(store, node("a"), backfill())
    store.update_backfill("bf", at=AT, actor="op", origin="cli", status="stopped")
    again = changes(store, node("a"), backfill())
    assert again.empty
    record = store.backfill("bf")
    assert record is not None and record.status == "stopped"
