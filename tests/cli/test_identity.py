"""Who is asking (DESIGN §5.2, §7), through the real app on a real store.

A saved plan is bound to the actor it was checked for and sealed against edits
(`apply --plan`); every operation checks the actor's permission on the nodes it touches
against what apply recorded in the store; a Config with `requireActor` makes the actor
mandatory for apply and for the operations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.state import StateStore, StoreUnavailable, open_store
from backfill_ctl.state.sqlite import SQLiteStore
from tests.builders import backfill, config, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files

# a (alice's) -> b (bob's), in a workspace `ops` operates.
A_B = (
    node("a", resourceGroup="rg", command=["true"]),
    node("b", upstream=["a"], resourceGroup="rg", owners=("bob",), command=["true"]),
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def specs(root: Path, *docs: dict[str, Any], require_actor: bool = False) -> str:
    settings: dict[str, Any] = {"backend": "local"}
    if require_actor:
        settings["requireActor"] = True
    write_files(
        root / "specs",
        {
            "backfillctl.yaml": dump(config(**settings)),
            "catalog.yaml": dump(workspace(operators=("ops",)), resource_group("rg", 4), *docs),
        },
    )
    return str(root / "specs")


def store(root: Path) -> StateStore:
    return open_store(root / ".backfillctl" / "state.db", create=False)


def ids(root: Path, node: str) -> list[str]:
    return [i.id for i in store(root).instances(node=node)]


def states(root: Path) -> dict[str, str]:
    return {i.node: i.state for i in store(root).instances()}


# -- apply --plan: a saved plan is bound to its actor and sealed ------------------------


def saved_plan(root: Path, *actor: str) -> tuple[str, dict[str, Any]]:
    path = specs(root, *A_B, backfill())
    made = run("plan", path, "--now", NOW, *(("--as", *actor) if actor else ()), "--out", "p.json")
    assert made.exit_code == 0, made.stderr
    return path, json.loads((root / "p.json").read_text(encoding="utf-8"))


def test_a_saved_plan_is_applied_under_the_callers_name(repo: Path) -> None:
    path, _ = saved_plan(repo, "ops")

    applied = run("apply", path, "--plan", "p.json", "--as", "ops")

    assert applied.exit_code == 0, applied.stderr
    record = store(repo).backfill("bf")
    assert record is not None and record.applied_by == "ops"
    assert {e.actor for e in store(repo).events(backfill="bf")} == {"ops"}


def test_a_plan_made_for_another_actor_is_refused_naming_both(repo: Path) -> None:
    path, _ = saved_plan(repo, "ops")

    result = run("apply", path, "--plan", "p.json", "--as", "mallory")

    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        [
            "error: --plan p.json was made for ops, and you are mallory",
            "  hint: plan again as yourself: backfillctl plan PATHS --as mallory --out FILE",
        ],
    )
    assert not (repo / ".backfillctl").exists()


def test_the_caller_comes_from_the_environment_as_in_the_apply_workflow(repo: Path) -> None:
    """backfill-apply.yml sets $BACKFILLCTL_ACTOR (from github.actor) for both steps."""
    path = specs(repo, *A_B, backfill())
    env = {"BACKFILLCTL_ACTOR": "ops"}
    assert run("plan", path, "--out", "plan.json", env=env).exit_code == 0

    applied = run("apply", path, "--plan", "plan.json", env=env)
    forged = run("apply", path, "--plan", "plan.json", env={"GITHUB_ACTOR": "mallory"})

    assert applied.exit_code == 0, applied.stderr
    assert forged.exit_code == 2
    assert "was made for ops, and you are mallory" in forged.stderr


def test_a_plan_made_without_an_actor_is_refused_to_a_caller_with_one(repo: Path) -> None:
    path, plan = saved_plan(repo)
    assert plan["actor"] is None

    result = run("apply", path, "--plan", "p.json", "--as", "mallory")

    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        2,
        "error: --plan p.json was made without an actor (its permissions were not checked), "
        "and you are mallory",
    )
    # ... and applied, unchecked as it was made, by a caller without one.
    assert run("apply", path, "--plan", "p.json").exit_code == 0


def test_a_plan_made_for_an_actor_needs_that_actor(repo: Path) -> None:
    path, _ = saved_plan(repo, "ops")

    result = run("apply", path, "--plan", "p.json")

    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        [
            "error: --plan p.json was made for ops, and no actor is given (--as, "
            "$BACKFILLCTL_ACTOR, $GITHUB_ACTOR)",
            "  hint: apply it --as ops if that is you; else plan again as yourself",
        ],
    )


def _set(path: tuple[str | int, ...], value: object) -> Any:
    def edit(plan: dict[str, Any]) -> None:
        parent: Any = plan
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value

    return edit


EDITS = {
    "actor": _set(("actor",), "mallory"),
    "now": _set(("now",), "2024-03-01T00:00:00+00:00"),
    "digest": _set(("digest",), "sha256:" + "0" * 64),
    "instance": _set(("backfills", 0, "instances", 0, "command"), ["rm", "-rf", "/"]),
    "dry-run": _set(("backfills", 0, "instances", 1, "dryRun"), True),
    "backfill": _set(("backfills", 0, "name"), "other"),
    "added field": _set(("extra",), 1),
    "seal": _set(("seal",), "sha256:" + "0" * 64),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_any_edit_of_a_saved_plan_refuses_it(repo: Path, edit: Any) -> None:
    path, plan = saved_plan(repo)  # without an actor: nothing was checked
    edit(plan)
    (repo / "p.json").write_text(json.dumps(plan, indent=2), encoding="utf-8")
    caller = ("--as", plan["actor"]) if plan["actor"] else ()

    result = run("apply", path, "--plan", "p.json", *caller)

    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        [
            "error: --plan p.json was edited after it was saved: its seal does not match "
            "its content",
            "  hint: a saved plan is applied as saved; plan again, review, and apply the new plan",
        ],
    )
    assert not (repo / ".backfillctl").exists()


def test_reformatting_a_saved_plan_changes_nothing_it_says(repo: Path) -> None:
    path, plan = saved_plan(repo, "ops")
    (repo / "p.json").write_text(json.dumps(plan, indent=None), encoding="utf-8")

    assert run("apply", path, "--plan", "p.json", "--as", "ops").exit_code == 0


def test_a_plan_without_a_seal_is_refused(repo: Path) -> None:
    path, plan = saved_plan(repo, "ops")
    del plan["seal"]
    (repo / "p.json").write_text(json.dumps(plan), encoding="utf-8")

    result = run("apply", path, "--plan", "p.json", "--as", "ops")

    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        2,
        "error: --plan p.json has no seal: it was saved by an earlier backfillctl",
    )


# -- operations check the actor's permission on each instance's node --------------------


@pytest.fixture
def applied(repo: Path) -> Path:
    """bf applied by ops: a@01 and b@01 pending."""
    result = run("apply", specs(repo, *A_B, backfill()), "--as", "ops", "--now", NOW)
    assert result.exit_code == 0, result.stderr
    return repo


OPERATIONS = ["stop", "rerun", "set-success", "freeze", "unfreeze"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_operation_is_refused_to_who_may_not_operate_the_node(
    applied: Path, operation: str
) -> None:
    [a] = ids(applied, "a")

    result = run(operation, a, "--as", "mallory")

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"instance/{a}: cannot {operation}: mallory may not operate node a (who may: alice, ops)\n",
    )
    assert states(applied) == {"a": "pending", "b": "pending"}
    assert [e.kind for e in store(applied).events(instance=a)] == ["created"]


@pytest.mark.parametrize("who", ["alice", "ops"])  # the node's owner, the workspace's operator
def test_the_owner_and_the_workspace_operator_may_operate(applied: Path, who: str) -> None:
    [a] = ids(applied, "a")

    assert run("freeze", a, "--as", who).exit_code == 0
    assert run("unfreeze", a, "--as", who).exit_code == 0
    assert run("set-success", a, "--as", who).exit_code == 0
    assert run("rerun", a, "--as", who).exit_code == 0
    stop = run("stop", a, "--as", who)  # allowed, but a is not running
    assert (
        stop.stderr
        == f"instance/{a}: cannot stop: it is pending (stop applies to running instances)\n"
    )
    assert [e.actor for e in store(applied).events(instance=a)][1:] == [who] * 4


def test_an_actor_operates_only_the_nodes_it_may(applied: Path) -> None:
    [a], [b] = ids(applied, "a"), ids(applied, "b")

    result = run("set-success", "--backfill", "bf", "--as", "alice")

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        f"instance/{a} set to succeeded\n",
        f"instance/{b}: cannot set-success: alice may not operate node b (who may: bob, ops)\n",
    )
    assert states(applied) == {"a": "succeeded", "b": "pending"}


def test_rerun_descendants_checks_each_descendant(applied: Path) -> None:
    assert run("set-success", "--backfill", "bf", "--as", "ops").exit_code == 0
    [a], [b] = ids(applied, "a"), ids(applied, "b")

    result = run("rerun", a, "--descendants", "--as", "alice")

    assert (result.exit_code, result.stderr) == (
        1,
        f"instance/{b}: cannot rerun: alice may not operate node b (who may: bob, ops)\n",
    )
    assert states(applied) == {"a": "pending", "b": "succeeded"}


@pytest.mark.parametrize("operation", ["stop", "delete"])
def test_stop_and_delete_of_a_backfill_need_every_node_it_runs(
    applied: Path, operation: str
) -> None:
    for who in ("mallory", "alice"):
        result = run(operation, "backfill/bf", "--as", who)
        denied = "a: alice, ops; b: bob, ops" if who == "mallory" else "b: bob, ops"
        count = 2 if who == "mallory" else 1
        assert (result.exit_code, result.stdout, result.stderr) == (
            1,
            "",
            f"backfill/bf: cannot {operation}: {who} may not operate {count} of its node(s) "
            f"(who may: {denied})\n",
        )
    record = store(applied).backfill("bf")
    assert record is not None and record.status == "active"
    assert run(operation, "backfill/bf", "--as", "ops").exit_code == 0


def test_a_dry_run_node_is_not_needed_to_stop_its_backfill(repo: Path) -> None:
    # c is an intermediate bob owns: alice's plan dry-runs it.
    docs = (
        node("a", resourceGroup="rg"),
        node("c", upstream=["a"], resourceGroup="rg", owners=("bob",)),
        node("d", upstream=["c"], resourceGroup="rg"),
    )
    assert (
        run("apply", specs(repo, *docs, backfill()), "--as", "alice", "--now", NOW).exit_code == 0
    )

    assert run("stop", "backfill/bf", "--as", "alice").exit_code == 0
    assert run("rerun", "--backfill", "bf", "--node", "c", "--as", "alice").exit_code == 1


def test_without_an_actor_nothing_is_checked(applied: Path) -> None:
    [a] = ids(applied, "a")
    assert run("set-success", a).exit_code == 0
    assert run("delete", "backfill/bf").exit_code == 0


def test_a_catalog_change_of_owners_is_applied_to_the_store(repo: Path) -> None:
    path = specs(repo, *A_B, backfill())
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    [b] = ids(repo, "b")
    assert run("freeze", b, "--as", "carol").exit_code == 1
    b_by_carol = node("b", upstream=["a"], resourceGroup="rg", owners=("carol",), command=["true"])
    specs(repo, A_B[0], b_by_carol, backfill())

    again = run("apply", path, "--as", "ops", "--now", NOW)

    assert again.stdout.splitlines()[0] == "~ backfill/bf: +0 ~0 -0, who may operate it changed"
    assert run("freeze", b, "--as", "carol").exit_code == 0
    assert run("freeze", b, "--as", "bob").exit_code == 1
    assert run("apply", path, "--as", "ops", "--now", NOW).stdout.startswith("  backfill/bf")


# -- requireActor: a team's store needs to know who asks --------------------------------


def test_require_actor_makes_the_actor_mandatory_for_apply_and_operations(repo: Path) -> None:
    path = specs(repo, *A_B, backfill(), require_actor=True)
    assert run("plan", path, "--now", NOW).exit_code == 0  # plan and diff only read
    assert run("diff", path, "--now", NOW).exit_code == 1

    anonymous = run("apply", path, "--now", NOW)

    assert (anonymous.exit_code, anonymous.stderr.splitlines()) == (
        2,
        [
            "error: apply needs an actor: the Config sets requireActor",
            "  hint: pass --as USER, or set $BACKFILLCTL_ACTOR",
        ],
    )
    assert not (repo / ".backfillctl").exists()
    assert run("apply", path, "--now", NOW, "--as", "ops").exit_code == 0
    [a] = ids(repo, "a")
    for args in (
        ["freeze", a],
        ["set-success", "--backfill", "bf"],
        ["stop", "backfill/bf"],
        ["delete", "backfill/bf"],
    ):
        result = run(*args)
        assert (result.exit_code, result.stderr.splitlines()) == (
            2,
            [
                "error: backfill/bf requires an actor (the Config sets requireActor): who is "
                "asking?",
                "  hint: pass --as USER, or set $BACKFILLCTL_ACTOR",
            ],
        ), args
    assert states(repo) == {"a": "pending", "b": "pending"}
    assert run("freeze", a, env={"BACKFILLCTL_ACTOR": "alice"}).exit_code == 0


def test_a_saved_plan_without_an_actor_cannot_be_applied_where_one_is_required(
    repo: Path,
) -> None:
    path = specs(repo, *A_B, backfill(), require_actor=True)
    assert run("plan", path, "--now", NOW, "--out", "p.json").exit_code == 0

    result = run("apply", path, "--plan", "p.json")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: apply needs an actor: the Config sets requireActor")


def test_who_may_operate_a_finished_backfill_follows_the_catalog(repo: Path) -> None:
    """A finished backfill is not reopened by a catalog edit, but its record of who may
    operate it is rewritten: a rerun is checked against the owners of today."""
    path = specs(repo, *A_B, backfill())
    assert run("apply", path, "--as", "ops", "--now", NOW, "--wait").exit_code == 0
    assert store(repo).backfill("bf").finished_at is not None  # type: ignore[union-attr]
    [b] = ids(repo, "b")
    assert run("rerun", b, "--as", "carol").exit_code == 1
    b_by_carol = node("b", upstream=["a"], resourceGroup="rg", owners=("carol",), command=["true"])
    specs(repo, A_B[0], b_by_carol, backfill())

    again = run("apply", path, "--as", "ops", "--now", NOW)

    assert again.exit_code == 0, again.stderr
    assert "who may operate it changed" in again.stdout
    assert store(repo).backfill("bf").finished_at is not None  # type: ignore[union-attr]
    assert run("rerun", b, "--as", "bob").exit_code == 1
    assert run("rerun", b, "--as", "carol").exit_code == 0


def test_who_may_operate_it_not_written_after_the_apply_committed_is_said_so(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """That record is a second write: when it fails, the rest of the apply was committed,
    and the store's own hint ("nothing was changed") would say otherwise."""
    path = specs(repo, *A_B, backfill(), backfill("other", dates=["2024-03-02"]))
    assert run("apply", path, "--as", "ops", "--now", NOW, "--wait").exit_code == 0
    b_by_carol = node("b", upstream=["a"], resourceGroup="rg", owners=("carol",), command=["true"])
    specs(repo, A_B[0], b_by_carol, backfill(), backfill("other", dates=["2024-03-05"]))

    def full(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable(
            "the state store cannot be written: disk full", hint="nothing was changed"
        )

    monkeypatch.setattr(SQLiteStore, "update_backfill", full)
    again = run("apply", path, "--as", "ops", "--now", NOW)

    assert again.exit_code == 2
    assert again.stderr.splitlines()[-1] == (
        "  hint: the rest of the apply was committed; who may operate the finished "
        "backfill/bf was not: apply the same specs again to write it"
    )
    assert {i.bizdate for i in store(repo).instances(backfill="other")} == {
        "2024-03-02",
        "2024-03-05",
    }
