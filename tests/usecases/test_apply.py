"""The apply use case without the CLI: real spec files, a real SQLite store in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.errors import UsageError
from backfill_ctl.state import StateStore, open_store
from backfill_ctl.usecases import apply as applying
from backfill_ctl.usecases.plan_data import iter_json
from tests.builders import NOW, backfill, config, dump, node, resource_group, workspace, write

AT = NOW.timestamp()
CHAIN = (
    node("a", resourceGroup="rg"),
    node("b", upstream=["a"], resourceGroup="rg"),
)
TWO_DAYS = [{"from": "2024-03-01", "to": "2024-03-02"}]


def specs(root: Path, *docs: dict[str, Any], **settings: Any) -> list[str]:
    write(
        root / "specs" / "catalog.yaml",
        dump(config(**settings), workspace(operators=("ops",)), resource_group("rg"), *docs),
    )
    return [str(root / "specs")]


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return open_store(tmp_path / "state.db", create=True)


def test_prepare_commit_and_a_second_apply_changes_nothing(
    tmp_path: Path, store: StateStore
) -> None:
    paths = specs(tmp_path, *CHAIN, backfill(dates=TWO_DAYS))

    prepared = applying.prepare(paths, NOW, "ops")
    assert not prepared.failed
    assert prepared.names == ["bf"]
    changes = applying.changes(prepared, store, at=AT)
    assert changes.totals() == (4, 0, 0, 0)
    applying.commit(prepared, store, changes, at=AT, actor="ops")

    assert len(store.instances(backfill="bf")) == 4
    record = store.backfill("bf")
    assert record is not None
    assert record.applied_by == "ops"
    assert record.digest == prepared.plan.digest
    again = applying.changes(applying.prepare(paths, NOW, "ops"), store, at=AT)
    assert again.empty
    assert again.summary(done=False) == "No changes: the state store matches the specs."


def test_an_apply_that_another_one_beat_to_the_store_diffs_again(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two applies of the same specs at once (a pipeline's and the controller's): the one
    whose diff was read before the other's write finds its instances there when it writes
    (the store refuses them: StoreConflict); it reads the store again and has nothing
    left to do, not a crash."""
    paths = specs(tmp_path, *CHAIN, backfill(dates=TWO_DAYS))
    prepared = applying.prepare(paths, NOW, "ops")
    diff = applying.changes

    def beaten(*args: Any, **kwargs: Any) -> Any:  # the other apply commits meanwhile
        found = diff(*args, **kwargs)
        if not store.instances(backfill="bf"):
            other = applying.prepare(paths, NOW, "ops")
            applying.commit(other, store, diff(other, store, at=AT), at=AT, actor="ops")
        return found

    monkeypatch.setattr(applying, "changes", beaten)
    done = applying.apply(prepared, store, at=AT, actor="ops")

    assert done.empty
    assert len(store.instances(backfill="bf")) == 4
    assert [e.kind for e in store.events(backfill="bf")].count("created") == 4


def test_without_a_store_everything_is_new(tmp_path: Path) -> None:
    paths = specs(tmp_path, *CHAIN, backfill())
    changes = applying.changes(applying.prepare(paths, NOW, None), None, at=AT)
    assert [(c.name, c.status, len(c.create)) for c in changes.backfills] == [("bf", "new", 2)]


def test_only_narrows_the_plan_and_the_changes(tmp_path: Path, store: StateStore) -> None:
    paths = specs(tmp_path, *CHAIN, backfill("one"), backfill("two"))
    prepared = applying.prepare(paths, NOW, "ops")

    changes = applying.changes(prepared, store, at=AT, only={"two"})

    assert [c.name for c in changes.backfills] == ["two"]


def test_prune_cancels_what_the_specs_no_longer_hold(tmp_path: Path, store: StateStore) -> None:
    paths = specs(tmp_path, *CHAIN, backfill("one"), backfill("two"))
    first = applying.prepare(paths, NOW, "ops")
    applying.commit(first, store, applying.changes(first, store, at=AT), at=AT, actor="x")
    paths = specs(tmp_path, *CHAIN, backfill("one"))
    prepared = applying.prepare(paths, NOW, "ops")

    kept = applying.changes(prepared, store, at=AT)
    pruned = applying.changes(prepared, store, at=AT, prune=True)

    assert kept.empty
    assert [(c.name, c.status, len(c.cancel)) for c in pruned.backfills if c.cancel] == [
        ("two", "pruned", 2)
    ]


def test_error_findings_fail_the_preparation(tmp_path: Path) -> None:
    # bob may not operate a node alice owns (and he is no operator of the workspace)
    prepared = applying.prepare(specs(tmp_path, *CHAIN, backfill()), NOW, "bob")

    assert prepared.failed
    assert prepared.errors
    assert all(f.is_error for f in prepared.errors)
    assert not any(f.is_error for f in prepared.warnings)


def test_require_actor(tmp_path: Path) -> None:
    prepared = applying.prepare(specs(tmp_path, *CHAIN, backfill(), requireActor=True), NOW, None)
    with pytest.raises(UsageError, match="apply needs an actor: the Config sets requireActor"):
        applying.require_actor(prepared.specs, None, "apply")
    applying.require_actor(prepared.specs, "ops", "apply")


def saved(tmp_path: Path, paths: list[str], actor: str | None) -> Path:
    plan = applying.prepare(paths, NOW, actor).plan
    return write(tmp_path / "plan.json", "".join(iter_json(plan)))


def test_a_saved_plan_is_applied_at_its_own_now(tmp_path: Path) -> None:
    paths = specs(tmp_path, *CHAIN, backfill())
    plan_file = saved(tmp_path, paths, "ops")

    prepared = applying.prepare(paths, NOW.replace(year=2030), "ops", plan_file)

    assert prepared.plan.now == NOW
    assert not prepared.failed


@pytest.mark.parametrize(
    ("made_for", "caller", "message"),
    [
        ("ops", "bob", "was made for ops, and you are bob"),
        ("ops", None, "was made for ops, and no actor is given"),
        (None, "ops", "was made without an actor (its permissions were not checked)"),
    ],
)
def test_a_saved_plan_is_bound_to_its_actor(
    tmp_path: Path, made_for: str | None, caller: str | None, message: str
) -> None:
    paths = specs(tmp_path, *CHAIN, backfill())
    plan_file = saved(tmp_path, paths, made_for)
    with pytest.raises(UsageError) as raised:
        applying.prepare(paths, NOW, caller, plan_file)
    assert message in raised.value.message


def test_an_edited_a_stale_and_an_unsealed_plan_are_refused(tmp_path: Path) -> None:
    paths = specs(tmp_path, *CHAIN, backfill())
    plan_file = saved(tmp_path, paths, "ops")
    data = json.loads(plan_file.read_text())

    edited = write(tmp_path / "edited.json", json.dumps({**data, "actor": "ops2"}))
    with pytest.raises(UsageError, match="was edited after it was saved"):
        applying.prepare(paths, NOW, "ops", edited)
    unsealed = write(
        tmp_path / "unsealed.json", json.dumps({k: v for k, v in data.items() if k != "seal"})
    )
    with pytest.raises(UsageError, match="has no seal"):
        applying.prepare(paths, NOW, "ops", unsealed)
    with pytest.raises(UsageError, match="not a saved plan"):
        applying.prepare(paths, NOW, "ops", write(tmp_path / "junk.json", "[1]"))
    specs(tmp_path, *CHAIN, backfill(dates=TWO_DAYS))
    with pytest.raises(UsageError, match="is stale: the specs changed since it was saved"):
        applying.prepare(paths, NOW, "ops", plan_file)
