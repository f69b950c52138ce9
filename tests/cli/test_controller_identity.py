"""Issue 9, item 1: the controller applies each Backfill under a checked identity.

A node that `plan --as alice` dry-runs (an intermediate bob owns) must never run when
the controller re-applies the specs after a change; a Backfill nobody applied with an
identity is not applied by the controller (it says why), unless the controller itself
was started `--as` someone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.cli.helpers import NOW, run
from tests.cli.test_apply import specs


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def docs(command: str = "true") -> tuple[dict[str, object], ...]:
    # c is an intermediate bob owns: alice's plan dry-runs it.
    return (
        node("a", resourceGroup="rg", command=command),
        node("c", upstream=["a"], resourceGroup="rg", owners=("bob",), command=command),
        node("d", upstream=["c"], resourceGroup="rg", command=command),
    )


def test_a_node_the_applier_may_not_operate_stays_dry_run_when_the_controller_re_applies(
    repo: Path,
) -> None:
    path = specs(repo, *docs(), backfill())
    assert run("apply", path, "--as", "alice", "--now", NOW).exit_code == 0
    store = open_store(repo / ".backfillctl" / "state.db")
    (c,) = store.instances(node="c")
    assert c.dry_run_reason is not None
    specs(repo, *docs("echo changed"), backfill())  # a merge changes the commands

    result = run("controller", path, "--once", "--now", NOW)

    assert result.exit_code == 0, result.stderr
    (c,) = store.instances(node="c")
    assert c.dry_run_reason is not None  # planned as alice, not as nobody
    (a,) = store.instances(node="a")
    assert a.run.command == "echo changed"  # the change itself was applied
    assert store.backfill("bf").applied_by == "alice"  # type: ignore[union-attr]


def test_a_backfill_without_an_identity_is_not_applied_by_the_controller(repo: Path) -> None:
    path = specs(repo, *docs(), backfill())

    result = run("controller", path, "--once", "--now", NOW)

    assert result.exit_code == 0
    assert "backfill/bf: not applied by the controller: no identity" in result.stderr
    assert "hint: apply it with backfillctl apply --as USER" in result.stderr
    assert open_store(repo / ".backfillctl" / "state.db").backfill("bf") is None


def test_a_controller_started_as_someone_applies_as_them(repo: Path) -> None:
    path = specs(repo, *docs(), backfill())

    result = run("controller", path, "--once", "--now", NOW, "--as", "alice")

    assert result.exit_code == 0, result.stderr
    store = open_store(repo / ".backfillctl" / "state.db")
    assert store.backfill("bf").applied_by == "alice"  # type: ignore[union-attr]
    (c,) = store.instances(node="c")
    assert c.dry_run_reason is not None


def test_a_backfill_whose_applier_lost_permission_is_not_re_applied(repo: Path) -> None:
    path = specs(repo, *docs(), backfill())
    assert run("apply", path, "--as", "alice", "--now", NOW).exit_code == 0
    # a is the target: alice loses it (now bob's): planned as alice, it is an error
    changed = (node("a", resourceGroup="rg", owners=("bob",)), *docs()[1:])
    specs(repo, *changed, backfill())

    result = run("controller", path, "--once", "--now", NOW)

    assert "backfill/bf (as alice): 1 error finding(s), not applied" in result.stderr
    (a,) = open_store(repo / ".backfillctl" / "state.db").instances(node="a")
    assert a.run.command == "true"  # the edit was not applied


def test_a_backfill_whose_applier_lost_an_intermediate_is_not_re_applied(repo: Path) -> None:
    """c, alice's, runs; the catalog gives it to bob: planned as alice, c would be dry-run,
    and its pending instances would succeed without running. Not re-applied, said why."""
    alices = (docs()[0], node("c", upstream=["a"], resourceGroup="rg"), docs()[2])
    path = specs(repo, *alices, backfill())
    assert run("apply", path, "--as", "alice", "--now", NOW).exit_code == 0
    specs(repo, *docs(), backfill())

    result = run("controller", path, "--once", "--now", NOW)

    assert (
        "backfill/bf (as alice): cannot apply: alice may not operate node c (who may: bob, "
        "ops), whose 1 stored instance(s) it would change; not applied" in result.stderr
    )
    (c,) = open_store(repo / ".backfillctl" / "state.db").instances(node="c")
    assert c.dry_run_reason is None
