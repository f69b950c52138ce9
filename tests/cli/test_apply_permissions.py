"""What an apply may change of what the store holds, by who applies it (DESIGN §7).

An apply cancels the stored instances its specs no longer plan, gives new definitions to
those that have not started, and `--prune` deletes Backfills gone from the specs: each
of these is an operation on instances someone else applied, checked as an operation is
(`delete backfill/NAME`, `freeze`, `set-success`): the actor must be allowed to operate
their nodes. So a colleague applying another Backfill under the same name, or pruning
from a checkout that lacks one, is refused, naming the nodes and who may.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.state import StateStore, open_store
from tests.builders import backfill, config, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files

# a is alice's, b is bob's; `ops` operates the workspace.
CATALOG = (
    workspace(operators=("ops",)),
    resource_group("rg", 4),
    node("a", resourceGroup="rg", command=["true"]),
    node("b", resourceGroup="rg", owners=("bob",), command=["true"]),
)
ALICES = backfill("fix", {"method": "manual", "roots": ["a"]}, ["2024-03-01", "2024-03-02"])
BOBS = backfill("fix", {"method": "manual", "roots": ["b"]}, ["2024-03-01"])


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def checkout(root: Path, name: str, *docs: dict[str, Any]) -> str:
    """A checkout of the team's specs: the catalog and these Backfills."""
    write_files(
        root / name,
        {
            "backfillctl.yaml": dump(config(backend="local", requireActor=True)),
            "catalog.yaml": dump(*CATALOG),
            "backfills.yaml": dump(*docs) if docs else "",
        },
    )
    return str(root / name)


def store(root: Path) -> StateStore:
    return open_store(root / ".backfillctl" / "state.db", create=False)


def states(root: Path) -> dict[tuple[str, str], str]:
    return {(i.node, i.bizdate): i.state for i in store(root).instances()}


ALICE_PENDING = {("a", "2024-03-01"): "pending", ("a", "2024-03-02"): "pending"}


@pytest.fixture
def alices(repo: Path) -> Path:
    """alice applied her `fix`: a on two dates, pending."""
    applied = run("apply", checkout(repo, "alice", ALICES), "--as", "alice", "--now", NOW)
    assert applied.exit_code == 0, applied.stderr
    assert states(repo) == ALICE_PENDING
    return repo


def test_applying_another_backfill_by_the_same_name_cannot_cancel_what_others_may_operate(
    alices: Path,
) -> None:
    bobs = checkout(alices, "bob", BOBS)

    result = run("apply", bobs, "--as", "bob", "--now", NOW)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: backfill/fix: cannot apply: bob may not operate node a (who may: alice, ops), "
        "whose 2 stored instance(s) it would cancel",
        "  hint: apply it as one who may, or leave what is stored as it is "
        "(backfillctl diff shows what would change)",
    ]
    assert states(alices) == ALICE_PENDING
    record = store(alices).backfill("fix")
    assert record is not None and record.applied_by == "alice"
    assert [e.actor for e in store(alices).events(backfill="fix")] == ["alice"] * 3


def test_diff_and_a_dry_run_say_the_apply_would_be_refused(alices: Path) -> None:
    bobs = checkout(alices, "bob", BOBS)

    diff = run("diff", bobs, "--as", "bob", "--now", NOW)
    dry = run("apply", bobs, "--as", "bob", "--now", NOW, "--dry-run")

    refusal = (
        "error: backfill/fix: cannot apply: bob may not operate node a (who may: alice, ops), "
        "whose 2 stored instance(s) it would cancel"
    )
    assert (diff.exit_code, diff.stderr.splitlines()[0]) == (2, refusal)
    assert diff.stdout.startswith("~ backfill/fix: +1 ~0 -2\n")
    assert (dry.exit_code, dry.stderr.splitlines()[0]) == (1, refusal)
    assert states(alices) == ALICE_PENDING


def test_a_node_the_actor_may_not_operate_is_not_made_dry_run_by_a_re_apply(
    alices: Path,
) -> None:
    """bob's chain m -> a -> b (m and b his): a is an intermediate he may not operate,
    dry-run in his plan; applied over alice's `fix`, a's pending instances would succeed
    without running."""
    chain = (
        *CATALOG[:2],
        node("m", resourceGroup="rg", owners=("bob",), command=["true"]),
        node("a", upstream=["m"], resourceGroup="rg", command=["true"]),
        node("b", upstream=["a"], resourceGroup="rg", owners=("bob",), command=["true"]),
    )
    dates = ["2024-03-01", "2024-03-02"]
    bobs = checkout(
        alices, "bob", backfill("fix", {"method": "descendants", "roots": ["m"]}, dates)
    )
    write_files(alices / "bob", {"catalog.yaml": dump(*chain)})
    assert "no-permission-intermediate" in run("check", bobs, "--as", "bob", "--now", NOW).stdout

    result = run("apply", bobs, "--as", "bob", "--now", NOW)

    assert result.exit_code == 1, result.stdout
    assert result.stderr.splitlines()[2] == (  # after the plan's warning of the dry-run
        "error: backfill/fix: cannot apply: bob may not operate node a (who may: alice, ops), "
        "whose 2 stored instance(s) it would change"
    )
    assert states(alices) == ALICE_PENDING


def test_prune_needs_every_node_of_the_backfill_it_deletes(alices: Path) -> None:
    without = checkout(alices, "bob")

    result = run("apply", without, "--as", "bob", "--prune", "--now", NOW)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "error: backfill/fix: cannot prune: bob may not operate 1 of its node(s) "
        "(who may: a: alice, ops)"
    )
    assert states(alices) == ALICE_PENDING
    record = store(alices).backfill("fix")
    assert record is not None and record.status == "active"


@pytest.mark.parametrize("who", ["alice", "ops"])
def test_who_may_operate_the_nodes_may_change_or_prune_the_backfill(alices: Path, who: str) -> None:
    changed = run("apply", checkout(alices, "bob", BOBS), "--as", who, "--now", NOW)
    if who == "alice":  # b is bob's, a target of the new spec: the plan refuses it
        assert changed.exit_code == 1
        assert "no-permission-target" in changed.stderr
        mine = backfill("fix", {"method": "manual", "roots": ["a"]}, ["2024-03-02"])
        changed = run("apply", checkout(alices, "mine", mine), "--as", who, "--now", NOW)
    assert changed.exit_code == 0, changed.stderr

    pruned = run("apply", checkout(alices, "none"), "--as", who, "--prune", "--now", NOW)

    assert pruned.exit_code == 0, pruned.stderr
    record = store(alices).backfill("fix")
    assert record is not None and record.status == "deleted"


def test_a_checkout_without_require_actor_cannot_change_what_was_applied_under_it(
    alices: Path,
) -> None:
    """alice's `fix` was applied under a Config with requireActor; bob's checkout lacks
    it (an old branch): without an actor, his apply of the same name is asked who he is."""
    bobs = checkout(alices, "bob", BOBS)
    write_files(alices / "bob", {"backfillctl.yaml": dump(config(backend="local"))})
    assert run("diff", bobs, "--now", NOW).exit_code == 1  # diff only reads

    result = run("apply", bobs, "--now", NOW)

    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        [
            "error: backfill/fix requires an actor (the Config sets requireActor): who is asking?",
            "  hint: pass --as USER, or set $BACKFILLCTL_ACTOR",
        ],
    )
    assert states(alices) == ALICE_PENDING
    none = checkout(alices, "none")
    write_files(alices / "none", {"backfillctl.yaml": dump(config(backend="local"))})
    pruned = run("apply", none, "--prune", "--now", NOW)
    assert pruned.exit_code == 2
    assert states(alices) == ALICE_PENDING
