"""`plan -b NAME --out FILE`, then `apply --plan FILE`: a reviewed plan of some Backfills.

A saved plan is applied exactly: a plan of one Backfill of the specs (`plan -b`) applies
that Backfill, and nothing of the others; `--prune`, which would change Backfills the plan does not
hold, is refused with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backfill_ctl.state import open_store
from tests.builders import backfill, config, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_files(
        tmp_path / "specs",
        {
            "backfillctl.yaml": dump(config(backend="local")),
            "catalog.yaml": dump(
                workspace(operators=("ops",)),
                resource_group("rg", 4),
                node("a", resourceGroup="rg", command=["true"]),
                node("b", resourceGroup="rg", command=["true"]),
            ),
            "backfills.yaml": dump(
                backfill("one", {"method": "manual", "roots": ["a"]}),
                backfill("two", {"method": "manual", "roots": ["b"]}, ["2024-03-02"]),
            ),
        },
    )
    return tmp_path


def names(repo: Path) -> list[str]:
    store = open_store(repo / ".backfillctl" / "state.db", create=False)
    return sorted(b.name for b in store.backfills())


def test_a_plan_of_one_backfill_applies_that_one(repo: Path) -> None:
    made = run("plan", "specs", "-b", "one", "--as", "ops", "--now", NOW, "--out", "p.json")
    assert made.exit_code == 0, made.stderr
    assert [b["name"] for b in json.loads(Path("p.json").read_text())["backfills"]] == ["one"]

    applied = run("apply", "specs", "--plan", "p.json", "--as", "ops")

    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout.splitlines()[0] == "+ backfill/one: +1 ~0 -0"
    assert names(repo) == ["one"]
    again = run("apply", "specs", "--plan", "p.json", "--as", "ops")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("No changes: the state store matches")
    assert names(repo) == ["one"]


def test_prune_with_a_plan_of_some_backfills_is_refused(repo: Path) -> None:
    assert run("plan", "specs", "-b", "one", "--now", NOW, "--out", "p.json").exit_code == 0

    result = run("apply", "specs", "--plan", "p.json", "--prune")

    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        2,
        "error: --plan p.json holds some of the specs' Backfills (one): --prune would "
        "change the others",
    )
    assert not (repo / ".backfillctl").exists()


def test_a_plan_of_one_backfill_is_not_refused_for_another_s_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice may run `one` but not `two` (bob's node): `plan -b one` plans and saves
    `one`, and says nothing of `two`; planning both still fails on `two`."""
    monkeypatch.chdir(tmp_path)
    write_files(
        tmp_path / "specs",
        {
            "backfillctl.yaml": dump(config(backend="local")),
            "catalog.yaml": dump(
                workspace(),
                resource_group("rg", 4),
                node("a", resourceGroup="rg", command=["true"]),
                node("b", resourceGroup="rg", command=["true"], owners=("bob",)),
            ),
            "backfills.yaml": dump(
                backfill("one", {"method": "manual", "roots": ["a"]}),
                backfill("two", {"method": "manual", "roots": ["b"]}),
            ),
        },
    )

    made = run("plan", "specs", "-b", "one", "--as", "alice", "--now", NOW, "--out", "p.json")

    assert (made.exit_code, made.stderr) == (0, "")
    assert [b["name"] for b in json.loads(Path("p.json").read_text())["backfills"]] == ["one"]
    both = run("plan", "specs", "--as", "alice", "--now", NOW)
    assert both.exit_code == 1
    assert "alice" in both.stderr and "backfills.yaml" in both.stderr
    applied = run("apply", "specs", "--plan", "p.json", "--as", "alice")
    assert applied.exit_code == 0, applied.stderr
    assert names(tmp_path) == ["one"]
