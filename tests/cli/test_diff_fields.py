"""`diff`, `apply --dry-run` and `apply` say what changes, field by field, through the real app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.state import open_store
from tests.builders import API, backfill, dump, node, workspace
from tests.cli.helpers import NOW, run, write_files

CONFIG = {"apiVersion": API, "kind": "Config", "spec": {"backend": "local"}}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def specs(root: Path, *docs: dict[str, Any]) -> str:
    write_files(
        root / "specs",
        {
            "backfillctl.yaml": dump(CONFIG),
            "catalog.yaml": dump(workspace(operators=("ops",)), *docs),
        },
    )
    return str(root / "specs")


def diff(path: str, *more: str) -> tuple[int, list[str]]:
    result = run("diff", path, "--as", "ops", "--now", NOW, *more)
    return result.exit_code, result.stdout.splitlines()


def ids(repo: Path, name: str = "a") -> list[str]:
    found = open_store(repo / ".backfillctl" / "state.db").instances(node=name)
    return [i.id for i in sorted(found, key=lambda i: i.bizdate)]


def test_a_changed_backfill_field_is_named(repo: Path) -> None:
    path = specs(repo, node("a"), backfill())
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    specs(repo, node("a"), backfill(suspend=True))

    assert diff(path) == (
        1,
        [
            "~ backfill/bf: +0 ~0 -0, 1 field(s) of the Backfill changed",
            "  + spec.suspend: true",
            "Plan: 0 to create, 0 to update, 0 to cancel; 0 kept as they ran.",
        ],
    )
    applied = run("apply", path, "--as", "ops", "--now", NOW)
    assert applied.stdout.splitlines()[:2] == [
        "~ backfill/bf: +0 ~0 -0, 1 field(s) of the Backfill changed",
        "  + spec.suspend: true",
    ]
    specs(repo, node("a"), backfill(suspend=False))
    assert diff(path)[1][1] == "  ~ spec.suspend: true -> false"


def test_a_changed_command_names_each_instance_and_field(repo: Path) -> None:
    path = specs(repo, node("a", command="echo one"), backfill())
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    (iid,) = ids(repo)
    specs(repo, node("a", command="echo two", priority=7), backfill())

    code, lines = diff(path)

    assert (code, lines[:2]) == (
        1,
        [
            "~ backfill/bf: +0 ~1 -0",
            f'  ~ instance/{iid} (a, 2024-03-01): priority: 1 -> 3; run.command: "echo one" -> '
            '"echo two"',
        ],
    )
    dry = run("apply", path, "--as", "ops", "--now", NOW, "--dry-run")
    assert dry.stdout.splitlines() == lines  # one renderer


def test_added_and_removed_instances_are_listed(repo: Path) -> None:
    path = specs(repo, node("a"), backfill(dates=["2024-03-01", "2024-03-02"]))
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    first, second = ids(repo)
    specs(repo, node("a"), backfill(dates=["2024-03-02", "2024-03-03"]))

    code, lines = diff(path)
    document = json.loads(run("diff", path, "--as", "ops", "--now", NOW, "-o", "json").stdout)

    assert code == 1
    assert lines[:2] == [
        "~ backfill/bf: +1 ~1 -1",
        '  ~ spec.dates: ["2024-03-01", "2024-03-02"] -> ["2024-03-02", "2024-03-03"]',
    ]
    assert lines[2].startswith("  + instance/") and lines[2].endswith(" (a, 2024-03-03)")
    assert lines[3:5] == [
        f"  ~ instance/{second} (a, 2024-03-02): sequence: 1 -> 0",
        f"  - instance/{first} (a, 2024-03-01)",
    ]
    (bf,) = document["backfills"]
    assert document["kind"] == "Diff" and document["changed"] is True
    assert document["summary"] == {"create": 1, "update": 1, "cancel": 1, "kept": 0}
    assert [i["bizdate"] for i in bf["instances"]["add"]] == ["2024-03-03"]
    assert [i["id"] for i in bf["instances"]["remove"]] == [first]
    assert [i["id"] for i in bf["instances"]["change"]] == [second]
    assert bf["fields"][0]["path"] == "spec.dates"


def test_diff_json_names_old_and_new_values(repo: Path) -> None:
    path = specs(repo, node("a", command="echo one"), backfill())
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    specs(repo, node("a", command="echo two"), backfill(suspend=True))

    result = run("diff", path, "--as", "ops", "--now", NOW, "-o", "json")

    assert result.exit_code == 1
    (bf,) = json.loads(result.stdout)["backfills"]
    assert bf["fields"] == [{"path": "spec.suspend", "new": True}]
    (changed,) = bf["instances"]["change"]
    assert changed["fields"] == [{"path": "run.command", "old": "echo one", "new": "echo two"}]


def test_a_large_diff_is_bounded(repo: Path) -> None:
    month = [{"from": "2024-01-01", "to": "2024-01-31"}]
    path = specs(repo, node("a", command="echo one"), backfill(dates=month))
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    specs(repo, node("a", command="echo two"), backfill(dates=month))

    code, lines = diff(path)

    assert code == 1
    assert lines[0] == "~ backfill/bf: +0 ~31 -0"
    assert len(lines) == 1 + 20 + 1 + 1
    assert lines[21] == "  … and 11 more instance change(s) (diff -o json lists all)"


def test_apply_dry_run_works_before_the_first_apply_and_creates_nothing(repo: Path) -> None:
    path = specs(repo, node("a"), backfill())

    dry = run("apply", path, "--as", "ops", "--now", NOW, "--dry-run")

    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "+ backfill/bf: +1 ~0 -0",
        "Plan: 1 to create, 0 to update, 0 to cancel; 0 kept as they ran.",
    ]
    assert not (repo / ".backfillctl").exists()


def test_apply_dry_run_with_wait_is_refused(repo: Path) -> None:
    path = specs(repo, node("a"), backfill())

    result = run("apply", path, "--as", "ops", "--now", NOW, "--dry-run", "--wait")

    assert result.exit_code == 2
    assert "--dry-run and --wait contradict each other" in result.stderr
    assert not (repo / ".backfillctl").exists()
