"""Where commands run: the spec root of the process that runs them (the controller's, or
`apply --wait`'s), whichever checkout applied the specs last.

A controller follows a git-sync link (`git/repo` -> a worktree, swapped on every commit)
while a pipeline applies the same specs from a clone of its own, then removes it. Real
files, real processes, one store.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.core.records import FINISHED
from backfill_ctl.state import open_store
from tests.builders import API, backfill, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files
from tests.test_reliability import controller, wait_until

CONFIG = {"apiVersion": API, "kind": "Config", "spec": {"backend": "local"}}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store the controller and the pipeline share: a SQLite file, or a team's
    PostgreSQL (a new database of the PostgreSQL tier's server; skipped without it)."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return str(request.getfixturevalue("pg_url"))


def checkout(root: Path, *docs: dict[str, Any]) -> Path:
    """A checkout of the specs at `root`: the Config, the catalog and `docs`."""
    write_files(
        root / "specs",
        {
            "backfillctl.yaml": dump(CONFIG),
            "catalog.yaml": dump(workspace(operators=("ops",)), resource_group("rg"), *docs),
        },
    )
    return root / "specs"


def swap(link: Path, target: Path) -> None:
    """Point `link` at `target` as git-sync does: a new link renamed over the old one."""
    new = link.with_name(link.name + ".new")
    new.symlink_to(target)
    new.replace(link)


SPEC_ROOT = "the spec root of the controller or apply --wait that starts it"


def working_dir(described: str) -> str:
    """What `describe` says under Run: Working dir."""
    (line,) = [x for x in described.splitlines() if x.startswith("  Working dir:")]
    return line.split(":", 1)[1].strip()


def finished(store: str) -> bool:
    instances = open_store(store).instances()
    return bool(instances) and all(i.state in FINISHED for i in instances)


def test_a_pipeline_clone_removed_after_it_applied_does_not_move_the_controllers_commands(
    tmp_path: Path, store: str
) -> None:
    """The audit's repro: a merge adds a date, the controller re-applies it from its link,
    a pipeline applies the same specs from `ci/` and removes it; the next date runs in the
    controller's checkout, and the pipeline's apply changes nothing."""
    ran, gate, log = (tmp_path / n for n in ("ran.txt", "gate", "c.log"))
    # Where each date's command runs (the real directory), then it waits for the gate.
    command = (
        f'echo "$BACKFILL_BIZDATE $(pwd -P)" >> {ran}; until [ -e {gate} ]; do sleep 0.05; done'
    )
    job = node("a", resourceGroup="rg", command=command)
    first = checkout(tmp_path / "git" / ".worktrees" / "c1", job, backfill(dates=["2024-03-01"]))
    link = tmp_path / "git" / "repo"
    link.symlink_to(first.parent)
    holder = controller(link / "specs", store, log, "--as", "ops", "--now", NOW)
    try:
        wait_until(lambda: ran.exists(), 60, "the first date to start", log.read_text)
        merged = (job, backfill(dates=["2024-03-01", "2024-03-02"]))
        second = checkout(tmp_path / "git" / ".worktrees" / "c2", *merged)
        swap(link, second.parent)
        applies = lambda: log.read_text().count("Apply complete: ")  # noqa: E731
        wait_until(lambda: applies() == 2, 60, "the controller's re-apply", log.read_text)
        pipeline = checkout(tmp_path / "ci", *merged)

        applied = run("apply", str(pipeline), "--as", "ops", "--now", NOW, "--state-file", store)

        shutil.rmtree(tmp_path / "ci")
        gate.touch()
        wait_until(lambda: finished(store), 60, "the backfill to finish", log.read_text)
    finally:
        gate.touch()  # (whatever failed: no command is left waiting for it)
        holder.terminate()
        holder.wait(30)
    states = {(i.bizdate, i.state, i.reason) for i in open_store(store).instances()}
    assert states == {("2024-03-01", "succeeded", None), ("2024-03-02", "succeeded", None)}
    assert ran.read_text().splitlines() == [
        f"20240301 {first.resolve()}",
        f"20240302 {second.resolve()}",  # where the link pointed when it started
    ]
    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout.splitlines()[0] == "  backfill/bf: +0 ~0 -0"


WRITE = 'echo "$BACKFILL_BIZDATE" >> done.txt'
DOCS = (node("a", resourceGroup="rg", command=WRITE), backfill(dates=["2024-03-01"]))


def test_the_same_specs_from_two_checkouts_plan_the_same_and_diff_as_no_changes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    one, two = checkout(tmp_path / "one", *DOCS), checkout(tmp_path / "two", *DOCS)
    plans = [json.loads(run("plan", str(p), "--now", NOW, "-o", "json").stdout) for p in (one, two)]
    assert plans[0]["digest"] == plans[1]["digest"]
    assert [[i["id"] for i in b["instances"]] for b in plans[0]["backfills"]] == [
        [i["id"] for i in b["instances"]] for b in plans[1]["backfills"]
    ]
    assert run("apply", str(one), "--as", "ops", "--now", NOW).exit_code == 0

    again = run("diff", str(two), "--as", "ops", "--now", NOW)

    assert (again.exit_code, again.stdout.splitlines()) == (
        0,
        ["  backfill/bf: +0 ~0 -0", "No changes: the state store matches the specs."],
    )


def test_apply_wait_runs_in_its_own_checkout_after_a_removed_one_applied(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    mine, pipeline = checkout(tmp_path / "repo", *DOCS), checkout(tmp_path / "ci", *DOCS)
    assert run("apply", str(pipeline), "--as", "ops", "--now", NOW).exit_code == 0
    shutil.rmtree(tmp_path / "ci")

    result = run("apply", str(mine), "--as", "ops", "--now", NOW, "--wait")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "  backfill/bf: +0 ~0 -0"
    assert (mine / "done.txt").read_text() == "20240301\n"


def test_an_instance_stored_with_the_applying_checkouts_directory_runs_in_the_runners(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A store written before: each instance holds the absolute directory of whoever
    applied it (here a clone since removed). It is read as the spec root, applying the
    same specs changes nothing, and it runs in the runner's checkout."""
    monkeypatch.chdir(tmp_path)
    mine = checkout(tmp_path / "repo", *DOCS)
    assert run("apply", str(mine), "--as", "ops", "--now", NOW).exit_code == 0
    with sqlite3.connect(tmp_path / ".backfillctl" / "state.db") as db:
        db.execute(
            "UPDATE instances SET run = json_remove(json_set(run, '$.cwd', ?), '$.workingDir')",
            (str(tmp_path / "ci" / "specs"),),
        )
    db.close()
    (ident,) = run("get", "instances", "-o", "name").stdout.split()
    assert working_dir(run("describe", ident).stdout) == SPEC_ROOT

    result = run("apply", str(mine), "--as", "ops", "--now", NOW, "--wait")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "  backfill/bf: +0 ~0 -0"
    assert (mine / "done.txt").read_text() == "20240301\n"
    (item,) = json.loads(run("get", "instances", "-o", "json").stdout)["items"]
    assert item["spec"]["run"]["workingDir"] == "."
    assert (
        working_dir(run("describe", ident).stdout)
        == f"{mine} (attempt 1's; each attempt runs in {SPEC_ROOT})"
    )


def test_an_alert_command_runs_in_the_controllers_spec_root_like_the_nodes(
    tmp_path: Path,
) -> None:
    """A relative alert command (`[sh, hooks/alert.sh]`, next to the specs) is found
    wherever the controller was started from, as a node's command is."""
    alerts = {"when": "always", "notify": [{"command": ["/bin/sh", "hooks/alert.sh"]}]}
    specs = checkout(tmp_path / "repo", *DOCS[:1], backfill(dates=["2024-03-01"], alerts=alerts))
    write_files(specs / "hooks", {"alert.sh": "cat > alerted.json; pwd -P >> alerted.json\n"})
    away = tmp_path / "elsewhere"
    away.mkdir()
    log = away / "c.log"
    store = str(tmp_path / "state.db")
    holder = controller(specs, store, log, "--as", "ops", "--now", NOW)
    try:
        wait_until(lambda: (specs / "alerted.json").exists(), 60, "the alert", log.read_text)
    finally:
        holder.terminate()
        holder.wait(30)
    event, where = (specs / "alerted.json").read_text().rsplit("}", 1)
    assert json.loads(event + "}")["outcome"] == "succeeded"
    assert where.strip() == str(specs.resolve())
    assert "alert failed" not in log.read_text()
