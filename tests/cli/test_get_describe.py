"""`get`, `describe` and `logs` through the real app, on real SQLite stores.

The store of most tests is tests/test_inspect.make_store (read its docstring): two
date groups with a failure, a waiting-for-time backfill, a deleted one. The clock of
the commands is pinned to T0 (2024-03-20 01:00 UTC, 09:00 in Shanghai).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.cli import describe, get, logs
from backfill_ctl.core.gates import Blocker
from backfill_ctl.core.records import Run
from backfill_ctl.runtime.controller import Controller
from backfill_ctl.state import StateStore, open_store
from tests.cli.helpers import ran_checkout, run
from tests.usecases.test_progress import DIGEST, T0, attempt, backfill, instance, make_store, save


class Cli:
    """`backfillctl ARGS --state-file <the store>`, and the store itself."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "s.db"
        self.logs = root / "logs"
        self.logs.mkdir()
        self.store: StateStore = make_store(self.path, self.logs)
        (self.logs / "a1.1.log").write_text("loading 2024-03-01\ndone\n")

    def __call__(self, *args: str) -> Result:
        return run(*args, "--state-file", str(self.path))


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get, "clock", lambda: T0)
    monkeypatch.setattr(describe, "clock", lambda: T0)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def usage_error(result: Result) -> list[str]:
    """The message and the hint of a usage error (exit 2), nothing on stdout."""
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stdout == ""
    return result.stderr.splitlines()


HEADER = (
    "NAME        STATUS   INSTANCES  SUCCEEDED  RUNNING  FAILED  CANCELLED  WAITING  FINISHED  AGE"
)


def lines(*rows: str) -> str:
    return "".join(row + "\n" for row in rows)


def test_the_commands_are_listed_in_the_help() -> None:
    text = ok(run("-h"))
    assert all(f"  {c} " in text for c in ("get", "describe", "logs"))
    assert "backfills" in ok(run("get", "-h"))


# -- get backfills ---------------------------------------------------------------------------


def test_get_backfills_is_a_table_of_counts(cli: Cli) -> None:
    assert ok(cli("get", "backfills")) == lines(
        HEADER,
        "clicks      Waiting  1          0          0        0       "
        "0          1        -         3d",
        "fix-orders  Running  6          1          1        1       "
        "0          3        -         2h",
    )


def test_get_backfills_wide_with_the_deleted_ones(cli: Cli) -> None:
    assert ok(cli("get", "backfills", "--all", "-o", "wide")) == lines(
        "NAME        STATUS   INSTANCES  SUCCEEDED  RUNNING  FAILED  CANCELLED  WAITING  FINISHED  "
        "AGE  DIGEST               FILE                             LABELS                     "
        "APPLIED-BY  FINISHED-AT",
        "clicks      Waiting  1          0          0        0       0          1        -         "
        "3d   sha256:0123456789ab  specs/backfills/clicks.yaml      team=web                   "
        "-           -",
        "fix-orders  Running  6          1          1        1       0          3        -         "
        "2h   sha256:0123456789ab  specs/backfills/fix-orders.yaml  team=retail,ticket=DATA-1  "
        "alice       -",
        "old         Deleted  1          0          0        0       1          0        -         "
        "45s  sha256:0123456789ab  specs/backfills/old.yaml         -                          "
        "alice       -",
    )


def test_every_status_word(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    cases = {
        "a-stopped": ({"status": "stopped"}, "pending"),
        "b-suspended": ({"suspended": True}, "pending"),
        "c-succeeded": ({"outcome": "succeeded", "finished_at": T0}, "succeeded"),
        "d-failed": ({"outcome": "failed", "finished_at": T0}, "failed"),
        "e-running": ({}, "running"),
        "f-waiting": ({}, "waiting-for-resources"),
        "g-pending": ({}, "pending"),
        "h-deleted": ({"status": "deleted"}, "cancelled"),
    }
    for name, (fields, state) in cases.items():
        save(store, backfill(name, **fields), instance(f"{name}-1", bf=name, state=state))
    result = run("get", "backfills", "--all", "--state-file", str(tmp_path / "s.db"))

    words = [line.split()[:2] for line in ok(result).splitlines()[1:]]
    assert words == [
        ["a-stopped", "Stopped"],
        ["b-suspended", "Suspended"],
        ["c-succeeded", "Succeeded"],
        ["d-failed", "Failed"],
        ["e-running", "Running"],
        ["f-waiting", "Waiting"],
        ["g-pending", "Pending"],
        ["h-deleted", "Deleted"],
    ]


def test_get_backfills_by_name_and_by_label(cli: Cli) -> None:
    assert ok(cli("get", "backfills", "backfill/clicks", "-o", "name")) == "backfill/clicks\n"
    assert ok(cli("get", "backfills", "old", "-o", "name")) == "backfill/old\n"  # named: shown
    assert ok(cli("get", "backfills", "-l", "team=retail", "-o", "name")) == (
        "backfill/fix-orders\n"
    )
    assert ok(cli("get", "backfills", "-l", "team!=retail", "-o", "name")) == "backfill/clicks\n"
    assert ok(cli("get", "backfills", "-l", "team=retail", "-l", "ticket=DATA-1", "-o", "name"))
    assert ok(cli("get", "backfills", "-l", "team=retail,ticket=DATA-1", "-o", "name"))
    assert ok(cli("get", "backfills", "--all", "-o", "name")) == (
        "backfill/clicks\nbackfill/fix-orders\nbackfill/old\n"
    )
    # kubectl-like short names
    assert ok(cli("get", "bf", "-o", "name")) == ok(cli("get", "backfill", "-o", "name"))
    assert ok(cli("get", "inst", "c1", "-o", "name")) == "instance/c1\n"


def test_nothing_matching_says_so_on_stderr(cli: Cli) -> None:
    result = cli("get", "backfills", "-l", "team=retail", "-l", "ticket=DATA-2")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "No backfills found.\n")
    result = cli("get", "backfills", "-l", "team=nobody", "-o", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "apiVersion": "backfillctl.dev/v1alpha1",
        "kind": "List",
        "items": [],
    }
    assert ok(cli("get", "backfills", "-l", "team=nobody", "-o", "name")) == ""


def test_get_backfills_as_json_is_a_kubectl_list_of_objects(cli: Cli) -> None:
    data = json.loads(ok(cli("get", "backfills", "-o", "json")))

    assert set(data) == {"apiVersion", "kind", "items"}
    assert (data["apiVersion"], data["kind"]) == ("backfillctl.dev/v1alpha1", "List")
    clicks, fix = data["items"]
    assert set(fix) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert (fix["apiVersion"], fix["kind"]) == ("backfillctl.dev/v1alpha1", "Backfill")
    assert fix["metadata"] == {
        "name": "fix-orders",
        "labels": {"team": "retail", "ticket": "DATA-1"},
        "creationTimestamp": "2024-03-19T23:00:00Z",
    }
    assert fix["spec"] == {"groups": 2, "resourceGroup": "backfill-pool"}  # as applied
    status = fix["status"]
    assert status["phase"] == "Running"
    assert status["counts"] == {
        "pending": 3,
        "waiting-for-time": 0,
        "waiting-for-resources": 0,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "frozen": 0,
        "cancelled": 0,
    }
    assert status["instances"] == 6
    assert status["appliedAt"] == "2024-03-19T23:00:00Z"
    assert clicks["status"]["executionWindow"] == {"from": "22:00", "to": "06:00"}
    assert set(status) == {
        "phase",
        "state",
        "suspended",
        "outcome",
        "digest",
        "file",
        "appliedAt",
        "appliedBy",
        "finishedAt",
        "notifiedAt",
        "runImmediately",
        "executionWindow",
        "alertWhen",
        "notify",
        "instances",
        "counts",
        "access",
    }


def test_yaml_says_what_json_says(cli: Cli) -> None:
    for kind in ("backfills", "instances"):
        as_json = json.loads(ok(cli("get", kind, "-o", "json")))
        assert yaml.safe_load(ok(cli("get", kind, "-o", "yaml"))) == as_json


def test_an_unknown_backfill_is_a_usage_error_with_a_hint(cli: Cli) -> None:
    assert usage_error(cli("get", "backfills", "fix-order")) == [
        f"error: no backfill 'fix-order' in {cli.path}",
        "  hint: did you mean 'fix-orders'?",
    ]
    assert usage_error(cli("get", "backfills", "zzz"))[1] == (
        "  hint: backfillctl get backfills lists them"
    )
    assert usage_error(cli("get", "backfills", "-l", "team in (a"))[1].startswith(
        "  hint: write key="
    )


def test_a_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    result = run("get", "backfills", "--state-file", str(tmp_path / "none.db"))
    assert usage_error(result) == [
        f"error: no state store at {tmp_path / 'none.db'}",
        "  hint: run backfillctl apply first",
    ]
    assert not (tmp_path / "none.db").exists()


# -- get instances ---------------------------------------------------------------------------


def test_get_instances_is_a_table(cli: Cli) -> None:
    assert ok(cli("get", "instances")) == lines(
        "ID  BACKFILL    NODE           BIZDATE     SCHEDULED         STATE             "
        "ATTEMPTS  REASON",
        "c1  clicks      clicks_hourly  2024-03-20  2024-03-21 02:00  waiting-for-time  "
        "0         scheduled at 2024-03-21 02:00 +0800",
        "a1  fix-orders  a              2024-03-01  2024-03-02 02:00  succeeded         1"
        "         -",
        "b1  fix-orders  b              2024-03-01  2024-03-02 02:00  failed            "
        "1         exit code 2",
        "a2  fix-orders  a              2024-03-02  2024-03-03 02:00  pending           0"
        "         -",
        "b2  fix-orders  b              2024-03-02  2024-03-03 02:00  pending           0"
        "         -",
        "a3  fix-orders  a              2024-03-03  2024-03-04 02:00  running           1"
        "         -",
        "b3  fix-orders  b              2024-03-03  2024-03-04 02:00  pending           0"
        "         -",
    )


def test_get_instances_wide(cli: Cli) -> None:
    assert ok(cli("get", "instances", "-b", "fix-orders", "--node", "a", "-o", "wide")) == lines(
        "ID  BACKFILL    NODE  BIZDATE     SCHEDULED         STATE      ATTEMPTS  REASON  GROUP"
        "  PRIORITY  RESOURCE-GROUP  STARTED               FINISHED              DRY-RUN",
        "a1  fix-orders  a     2024-03-01  2024-03-02 02:00  succeeded  1         -       0.0  "
        "  5         backfill-pool   2024-03-20T00:00:00Z  2024-03-20T00:01:15Z  -",
        "a2  fix-orders  a     2024-03-02  2024-03-03 02:00  pending    0         -       0.1  "
        "  5         backfill-pool   -                     -                     -",
        "a3  fix-orders  a     2024-03-03  2024-03-04 02:00  running    1         -       1.0  "
        "  5         backfill-pool   2024-03-20T00:50:00Z  -                     -",
    )


def ids(result: Result) -> list[str]:
    return [name.removeprefix("instance/") for name in ok(result).split()]


def test_get_instances_filters(cli: Cli) -> None:
    assert ids(cli("get", "instances", "-o", "name", "--backfill", "clicks")) == ["c1"]
    assert ids(cli("get", "instances", "-o", "name", "--node", "b")) == ["b1", "b2", "b3"]
    assert ids(cli("get", "instances", "-o", "name", "--bizdate", "2024-03-02")) == ["a2", "b2"]
    assert ids(cli("get", "instances", "-o", "name", "--state", "running,failed")) == [
        "b1",
        "a3",
    ]
    both = ("--state", "running", "--state", "waiting-for-time")
    assert ids(cli("get", "instances", "-o", "name", *both)) == ["c1", "a3"]
    assert ids(cli("get", "instances", "-o", "name", "-l", "team=web")) == ["c1"]
    assert ids(cli("get", "instances", "-o", "name", "-l", "team=retail", "--node", "a")) == [
        "a1",
        "a2",
        "a3",
    ]
    assert ids(cli("get", "instances", "-o", "name", "instance/a2", "b2")) == ["a2", "b2"]
    assert (
        ids(cli("get", "instances", "-o", "name", "--node", "a", "--bizdate", "2024-03-09")) == []
    )


def test_instances_of_deleted_backfills_show_only_when_asked(cli: Cli) -> None:
    assert "o1" not in ids(cli("get", "instances", "-o", "name"))
    assert "o1" in ids(cli("get", "instances", "-o", "name", "--all"))
    assert ids(cli("get", "instances", "-o", "name", "--backfill", "old")) == ["o1"]
    assert ids(cli("get", "instances", "-o", "name", "o1")) == ["o1"]


def test_get_instances_as_json_has_every_field(cli: Cli) -> None:
    data = json.loads(ok(cli("get", "instances", "b1", "-o", "json")))
    (b1,) = data["items"]

    assert (data["apiVersion"], data["kind"]) == ("backfillctl.dev/v1alpha1", "List")
    assert b1 == {
        "apiVersion": "backfillctl.dev/v1alpha1",
        "kind": "Instance",
        "metadata": {
            "name": "b1",
            "labels": {"team": "retail", "ticket": "DATA-1"},  # its backfill's
            "ownerReferences": [
                {"apiVersion": "backfillctl.dev/v1alpha1", "kind": "Backfill", "name": "fix-orders"}
            ],
            "creationTimestamp": "2024-03-19T23:00:00Z",
        },
        "spec": {
            "backfill": "fix-orders",
            "node": "b",
            "bizdate": "2024-03-01",
            "cyctime": "2024-03-02T02:00:00+08:00",
            "cyctimeEpoch": b1["spec"]["cyctimeEpoch"],
            "timezone": "Asia/Shanghai",
            "group": 0,
            "sequence": 0,
            "priority": 5,
            "resourceGroup": "backfill-pool",
            "dryRun": False,
            "dryRunReason": None,
            "ignoreDeps": False,
            "dependsOn": ["a1"],
            "run": {
                "command": ["python", "jobs/etl.py", "--node", "b", "--pt", "20240301"],
                "env": {"BACKFILL_PARAM_BIZDATE": "20240301"},
                "workingDir": ".",
                "timeout": 3600.0,
                "retries": 0,
                "retryDelay": 30.0,
                "image": None,
                "cpu": None,
                "memory": None,
            },
        },
        "status": {
            "state": "failed",
            "reason": "exit code 2",
            "blocker": None,
            "attempts": 1,
            "triesLeft": 0,
            "stopRequested": False,
            "createdAt": "2024-03-19T23:00:00Z",
            "updatedAt": "2024-03-20T00:10:05Z",
            "startedAt": "2024-03-20T00:10:00Z",
            "finishedAt": "2024-03-20T00:10:05Z",
        },
    }


def test_a_long_reason_is_cut_in_the_table_not_in_the_data(cli: Cli) -> None:
    reason = "retrying after attempt 1: " + "x" * 80
    cli.store.transition(
        ["a2"], "pending", allowed=["pending"], at=T0, actor="t", origin="t", reason=reason
    )
    row = ok(cli("get", "instances", "a2")).splitlines()[1]
    assert row.endswith("  " + reason[:57] + "...")
    (a2,) = json.loads(ok(cli("get", "instances", "a2", "-o", "json")))["items"]
    assert a2["status"]["reason"] == reason


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ("--backfill", "clik"),
            "error: no backfill 'clik' in {path}",
            "  hint: did you mean 'clicks'?",
        ),
        (
            ("--node", "clicks_hourl"),
            "error: no instance of node 'clicks_hourl' in {path}",
            "  hint: did you mean 'clicks_hourly'?",
        ),
        (
            ("--node", "a", "--backfill", "clicks"),
            "error: no instance of node 'a' in backfill clicks",
            "  hint: backfillctl get instances lists them",
        ),
        (
            ("--bizdate", "2024-3-1"),
            "error: --bizdate '2024-3-1' is not a date",
            "  hint: write it like 2024-03-01",
        ),
        (
            ("--state", "runing"),
            "error: --state: unknown state 'runing'",
            "  hint: did you mean 'running'?",
        ),
        (
            ("nope",),
            "error: no instance 'nope' in {path}",
            "  hint: backfillctl get instances lists them",
        ),
        (
            ("fix-orders",),
            "error: no instance 'fix-orders' in {path}",
            "  hint: fix-orders is a backfill: say backfill/fix-orders",
        ),
    ],
)
def test_get_instances_usage_errors(
    cli: Cli, args: tuple[str, ...], message: str, hint: str
) -> None:
    assert usage_error(cli("get", "instances", *args)) == [
        message.format(path=cli.path),
        hint,
    ]


# -- watching --------------------------------------------------------------------------------


def between_polls(monkeypatch: pytest.MonkeyPatch, *changes: Any) -> list[float]:
    """Run `changes[n]` at the n-th poll's sleep (nothing once they run out)."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) <= len(changes):
            changes[len(slept) - 1]()

    monkeypatch.setattr(get, "_sleep", sleep)
    return slept


def finish_a3(cli: Cli) -> None:
    cli.store.end_attempt(
        "a3",
        1,
        attempt_state="succeeded",
        exit_code=0,
        message=None,
        instance_state="succeeded",
        at=T0 + 1,
        actor="controller",
        origin="test",
    )


def test_watch_prints_the_table_then_the_rows_that_change(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept = between_polls(monkeypatch, lambda: None, lambda: finish_a3(cli))

    result = cli("get", "backfills", "-w", "--watch-limit", "3")

    assert ok(result) == lines(
        HEADER,
        "clicks      Waiting  1          0          0        0       "
        "0          1        -         3d",
        "fix-orders  Running  6          1          1        1       "
        "0          3        -         2h",
        "fix-orders  Pending  6          2          0        1       "
        "0          3        -         2h",
    )
    assert slept == [1.0, 1.0, 1.0]


def test_watch_instances_as_names_and_json(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    between_polls(monkeypatch, lambda: finish_a3(cli))
    result = cli(
        "get",
        "instances",
        "-b",
        "fix-orders",
        "--node",
        "a",
        "-o",
        "name",
        "-w",
        "--watch-limit",
        "2",
    )
    assert ok(result) == lines("instance/a1", "instance/a2", "instance/a3", "instance/a3")

    between_polls(
        monkeypatch,
        lambda: cli.store.transition(
            ["a3"],
            "pending",
            allowed=["succeeded"],
            at=T0 + 2,
            actor="bob",
            origin="cli",
            reason="rerun by bob",
        ),
    )
    result = cli("get", "instances", "a3", "-o", "json", "-w", "--watch-limit", "1")
    first, second = ok(result).split("\n}\n", 1)
    assert json.loads(first + "\n}")["items"][0]["status"]["state"] == "succeeded"
    assert json.loads(second)["status"]["state"] == "pending"


def test_watch_an_empty_listing_prints_the_header_with_the_first_row(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    between_polls(monkeypatch, lambda: finish_a3(cli))
    result = cli(
        "get",
        "instances",
        "--state",
        "succeeded",
        "--node",
        "a",
        "-b",
        "clicks",
        "-w",
        "--watch-limit",
        "1",
    )
    # no instance of node a in clicks: refused before watching
    assert result.exit_code == 2

    result = cli("get", "instances", "a3", "--state", "succeeded", "-w", "--watch-limit", "2")
    assert result.exit_code == 0
    assert result.stderr == "No instances found.\n"
    assert result.stdout == lines(
        "ID  BACKFILL    NODE  BIZDATE     SCHEDULED         STATE      ATTEMPTS  REASON",
        "a3  fix-orders  a     2024-03-03  2024-03-04 02:00  succeeded  1         -",
    )


def test_ctrl_c_ends_a_watch_with_130(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(get, "_sleep", interrupt)
    result = cli("get", "backfills", "-w")

    assert result.exit_code == 130
    assert result.stdout.startswith("NAME ")
    assert result.stderr == "interrupted\n"


# -- describe backfill -------------------------------------------------------------------------


def test_describe_a_backfill(cli: Cli) -> None:
    assert ok(cli("describe", "backfill/fix-orders")) == lines(
        "Name:               fix-orders",
        "Status:             Running",
        "File:               specs/backfills/fix-orders.yaml",
        f"Digest:             {DIGEST}",
        "Applied:            2024-03-19T23:00:00Z (2h ago)",
        "Applied by:         alice",
        "Finished:           -",
        "Labels:             team=retail",
        "                    ticket=DATA-1",
        "Settings:",
        "  Groups:           2",
        "  Order:            ascending",
        "  Resource group:   backfill-pool",
        "  Run immediately:  false",
        "  Execution window: always open",
        "  Suspend:          false",
        "  Alerts:           when failure",
        "Instances:          6 instances: 3 pending, 1 running, 1 succeeded, 1 failed",
        "Date groups:",
        "  GROUP  CURRENT DATE  PROGRESS     INSTANCES DONE  AT THE CURRENT DATE",
        "  0      2024-03-01    date 1 of 2  1 of 4          1 succeeded, 1 failed",
        "  1      2024-03-03    date 1 of 1  0 of 2          1 pending, 1 running",
        "Conditions:",
        "  Failed: 1 instance",
        "    ID  NODE  BIZDATE     ATTEMPTS  REASON",
        "    b1  b     2024-03-01  1         exit code 2",
        "  Blocked: date group 0: 2 instances of 1 later date wait behind 2024-03-01, which "
        "has 1 failed",
        "Events (last 12):",
        "  TIME                  ACTOR       INSTANCE  CHANGE                MESSAGE",
        "  2024-03-19T23:00:00Z  alice       a1        created: pending      -",
        "  2024-03-19T23:00:00Z  alice       b1        created: pending      -",
        "  2024-03-19T23:00:00Z  alice       a2        created: pending      -",
        "  2024-03-19T23:00:00Z  alice       b2        created: pending      -",
        "  2024-03-19T23:00:00Z  alice       a3        created: pending      -",
        "  2024-03-19T23:00:00Z  alice       b3        created: pending      -",
        "  2024-03-19T23:00:00Z  alice       -         applied               applied "
        "sha256:0123456789ab",
        "  2024-03-20T00:00:00Z  controller  a1        pending -> running    attempt 1",
        "  2024-03-20T00:01:15Z  controller  a1        running -> succeeded  -",
        "  2024-03-20T00:10:00Z  controller  b1        pending -> running    attempt 1",
        "  2024-03-20T00:10:05Z  controller  b1        running -> failed     exit code 2",
        "  2024-03-20T00:50:00Z  controller  a3        pending -> running    attempt 1",
    )


def test_describe_shows_the_settings_and_hides_webhook_secrets(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    record = backfill(
        "night",
        run_immediately=True,
        execution_window=("22:00", "06:00"),
        suspended=True,
        alert_when="always",
        notify=(
            {"webhook": "https://hooks.example.com/services/T0/SECRET"},
            {"command": ["notify", "--to", "ops"]},
            {"email": ["a@example.com", "b@example.com"]},
        ),
        labels={},
        body={"order": "descending", "groups": 3, "resourceGroup": "follow-node"},
    )
    save(store, record, instance("n1", bf="night"))
    store.update_backfill(
        "night", at=T0, actor="ops", origin="cli", event="stopped by ops", status="stopped"
    )

    text = ok(run("describe", "backfill", "night", "--state-file", str(tmp_path / "s.db")))

    assert "SECRET" not in text
    assert (
        lines(
            "Settings:",
            "  Groups:           3",
            "  Order:            descending",
            "  Resource group:   follow-node",
            "  Run immediately:  true",
            "  Execution window: 22:00-06:00",
            "  Suspend:          true",
            "  Alerts:           when always: webhook https://hooks.example.com/...; command "
            "notify --to ops; email a@example.com, b@example.com",
        )
        in text
    )
    assert "\nStatus:             Stopped\n" in text
    assert "\nLabels:             -\n" in text
    assert (
        lines(
            "Conditions:",
            "  Stopped: nothing new starts until it is resumed or an instance rerun",
            "Events (last 3):",
        )
        in text
    )


def test_describe_lists_ten_failures_and_counts_the_rest(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    failed = [
        instance(f"f{n:02d}", bf="many", node=f"n{n:02d}", state="failed", reason="boom")
        for n in range(12)
    ]
    frozen = instance("z", bf="many", node="z", state="frozen")
    later = instance("l1", bf="many", node="l", day=2, seq=1, deps=("f00",))
    save(store, backfill("many"), *failed, frozen, later)

    text = ok(run("describe", "backfill/many", "--state-file", str(tmp_path / "s.db")))

    conditions = text[text.index("Conditions:") : text.index("Events")]
    assert conditions.splitlines()[:3] == [
        "Conditions:",
        "  Failed: 12 instances",
        "    ID   NODE  BIZDATE     ATTEMPTS  REASON",
    ]
    assert "f09" in conditions and "f10" not in conditions
    assert conditions.splitlines()[13:] == [
        "    ... and 2 more (backfillctl get instances --backfill many --state failed)",
        "  Frozen: 1 instance (what depends on them stays blocked)",
        "  Blocked: date group 0: 1 instance of 1 later date wait behind 2024-03-01, which has "
        "12 failed, 1 frozen",
        "  Blocked: 1 instance waits for a failed or frozen dependency",
    ]


def test_a_finished_backfill_shows_every_group_done(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    save(
        store,
        backfill("done", outcome="succeeded", finished_at=T0 - 60),
        instance("d1", bf="done", state="succeeded"),
        instance("d2", bf="done", day=2, seq=1, state="cancelled"),
    )
    text = ok(run("describe", "backfill/done", "--state-file", str(tmp_path / "s.db")))

    assert "\nFinished:           2024-03-20T00:59:00Z: succeeded\n" in text
    assert (
        lines(
            "  GROUP  CURRENT DATE  PROGRESS     INSTANCES DONE  AT THE CURRENT DATE",
            "  0      all done      date 2 of 2  2 of 2          -",
            "Conditions:         none",
        )
        in text
    )


# -- describe instance --------------------------------------------------------------------------


def test_describe_a_waiting_instance_says_why(cli: Cli) -> None:
    assert ok(cli("describe", "b2")) == lines(
        "Instance:           b2",
        "Backfill:           fix-orders (Running)",
        "Node:               b",
        "Business date:      2024-03-02",
        "Scheduled:          2024-03-03T02:00:00+08:00 (Asia/Shanghai)",
        "State:              pending",
        "Reason:             -",
        "Dry run:            -",
        "Why it waits:",
        "  - 1 dependency not succeeded: a2 is pending",
        "Priority:           5",
        "Date group:         0.1 (group 0, sequence 1)",
        "Resource group:     backfill-pool",
        "Attempts:           0 (tries left 1)",
        "Started:            -",
        "Finished:           -",
        "Depends on (1):",
        "  ID  NODE  BIZDATE     SCHEDULED         STATE",
        "  a2  a     2024-03-02  2024-03-03 02:00  pending",
        "Run:",
        "  Command:          python jobs/etl.py --node b --pt 20240302",
        "  Working dir:      the spec root of the controller or apply --wait that starts it",
        "  Timeout:          1h00m",
        "  Retries:          0",
        "  Environment:      BACKFILL_PARAM_BIZDATE=20240302",
        "Attempts:           none yet",
        "Events (last 1):",
        "  TIME                  ACTOR  CHANGE            MESSAGE",
        "  2024-03-19T23:00:00Z  alice  created: pending  -",
    )


def test_describe_an_instance_that_ran(cli: Cli) -> None:
    text = ok(cli("describe", "instance/a1"))

    assert "Why it waits" not in text
    assert (
        lines(
            "Attempts:           1 (tries left 0)",
            "Started:            2024-03-20T00:00:00Z",
            "Finished:           2024-03-20T00:01:15Z",
            "Depends on:         none",
        )
        in text
    )
    assert (
        lines(
            "Attempts:",
            "  #  STATE      EXIT  STARTED               DURATION  BACKEND  MESSAGE  LOG",
            f"  1  succeeded  0     2024-03-20T00:00:00Z  1m15s     local    -        "
            f"{cli.logs / 'a1.1.log'}",
        )
        in text
    )
    running = ok(cli("describe", "a3"))
    assert "  1  running  -     2024-03-20T00:50:00Z  10m00s so far  local" in running


def test_describe_the_time_and_the_window(cli: Cli) -> None:
    text = ok(cli("describe", "c1"))
    assert (
        lines(
            "State:              waiting-for-time",
            "Reason:             scheduled at 2024-03-21 02:00 +0800",
            "Dry run:            -",
            "Why it waits:",
            "  - scheduled at 2024-03-21 02:00 +0800",  # the first that holds: not the window
            "Priority:           5",
        )
        in text
    )


def test_describe_a_failed_dependency_then_a_closed_backfill(cli: Cli) -> None:
    cli.store.transition(
        ["a2"], "failed", allowed=["pending"], at=T0, actor="c", origin="t", reason="exit code 9"
    )
    why = "Why it waits:\n  - 1 dependency not succeeded: a2 is failed (rerun or set-success it)\n"
    assert why in ok(cli("describe", "b2"))
    cli.store.update_backfill(
        "fix-orders", at=T0, actor="bob", origin="cli", event="stopped by bob", status="stopped"
    )
    text = ok(cli("describe", "b2"))
    assert (
        lines(
            "Why it waits:",
            "  - backfill fix-orders is stopped: nothing new starts until it is resumed "
            "(backfillctl resume backfill/fix-orders) or one of its instances is rerun",
            "Priority:           5",
        )
        in text
    )
    assert "\nBackfill:           fix-orders (Stopped)\n" in text


def test_describe_an_earlier_date_not_done(cli: Cli) -> None:
    cli.store.transition(
        ["a2"], "succeeded", allowed=["pending"], at=T0, actor="c", origin="t", reason=None
    )
    assert (
        "Why it waits:\n  - the earlier business date 2024-03-01 of date group 0 (sequence 0) "
        "still has 1 instance not succeeded: 1 failed\n"
    ) in ok(cli("describe", "b2"))


def test_describe_a_frozen_instance(cli: Cli) -> None:
    cli.store.transition(
        ["a2"], "frozen", allowed=["pending"], at=T0, actor="c", origin="t", reason="frozen by bob"
    )
    text = ok(cli("describe", "a2"))
    assert (
        lines(
            "Why it waits:",
            "  - it is frozen: it does not start, and what depends on it stays blocked "
            "(backfillctl unfreeze a2)",
        )
        in text
    )


def test_describe_many_dependencies_shows_ten(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    ups = [instance(f"u{n:02d}", bf="wide", node=f"u{n:02d}") for n in range(13)]
    down = instance("d", bf="wide", node="d", deps=(*(u.id for u in ups), "gone"))
    save(store, backfill("wide"), *ups, down)

    text = ok(run("describe", "d", "--state-file", str(tmp_path / "s.db")))

    why = text[text.index("Why it waits:") : text.index("Priority:")].splitlines()
    assert why == [
        "Why it waits:",
        "  - 13 dependencies not succeeded: "
        + ", ".join(f"u{n:02d} is pending" for n in range(10))
        + ", and 3 more",
    ]
    assert "  gone  -     -           -                 not in the state store" in text
    assert "Depends on (14):" in text


def test_describe_a_string_command_and_the_run_settings(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    command = Run(
        "echo $HOME | tee out", env={"B": "2", "A": "1"}, retries=2, image="etl:1", cpu="500m"
    )
    save(store, backfill("str"), replace(instance("s1", bf="str"), run=command))
    text = ok(run("describe", "s1", "--state-file", str(tmp_path / "s.db")))
    assert (
        lines(
            "Run:",
            "  Command:          echo $HOME | tee out  (run with /bin/sh -c)",
            "  Working dir:      the spec root of the controller or apply --wait that starts it",
            "  Timeout:          -",
            "  Retries:          2",
            "  Retry delay:      30s",
            "  Image:            etl:1",
            "  CPU:              500m",
            "  Environment:      A=1",
            "                    B=2",
        )
        in text
    )


def test_waiting_for_resources_from_a_real_controller(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    hang = replace(instance("h1", node="h", resource_group="pool"), run=Run(("hang",)))
    other = instance("h2", node="h2", resource_group="pool")
    store.save_apply(
        [backfill()],
        [hang, other],
        [],
        [],
        at=T0 - 7200,
        actor="alice",
        origin="cli",
        resource_groups=[("pool", "shared", 1)],
    )
    controller = Controller(store, FakeBackend(), clock=lambda: T0)
    assert controller.acquire(wait=False)
    controller.load()
    controller.tick()
    controller.release()

    (h2,) = store.instances(ids=["h2"])
    assert h2.blocker == {"cause": "resources", "group": "pool", "busy": 1, "slots": 1}
    text = ok(run("describe", "h2", "--state-file", str(tmp_path / "s.db")))

    # only the controller knows who holds the slot: describe prints the blocker it stored
    assert (
        lines(
            "State:              waiting-for-resources",
            "Reason:             resource group pool: 1 of 1 slots busy",
            "Dry run:            -",
            "Why it waits:",
            "  - resource group pool: 1 of 1 slots busy",
        )
        in text
    )


def test_describe_and_get_print_the_blocker_the_controller_stored(tmp_path: Path) -> None:
    """A retry's delay, decided by a real controller: describe and get show what it stored
    (not what the rules would say now), the blocker's one text."""
    store = open_store(tmp_path / "s.db")
    flaky = replace(
        instance("r1", node="r"), run=Run(("false",), retries=1, retry_delay=300.0), tries_left=2
    )
    store.save_apply([backfill()], [flaky], [], [], at=T0 - 7200, actor="a", origin="cli")
    backend = FakeBackend()
    controller = Controller(store, backend, clock=lambda: T0)
    assert controller.acquire(wait=False)
    controller.load()
    for _ in range(3):
        controller.tick()
    controller.release()

    (r1,) = store.instances(ids=["r1"])
    assert r1.state == "waiting-for-time" and r1.blocker is not None
    assert r1.blocker["cause"] == "retry-delay"
    text = Blocker.from_json(r1.blocker).text
    assert text.startswith("retrying at 2024-03-20 ")
    describe = ok(run("describe", "r1", "--state-file", str(tmp_path / "s.db")))
    assert f"Reason:             {text}\n" in describe
    assert f"Why it waits:\n  - {text}\n" in describe
    listed = ok(run("get", "instances", "--state-file", str(tmp_path / "s.db")))
    assert text in listed


def test_describe_several_targets_and_the_kind_word(cli: Cli) -> None:
    text = ok(cli("describe", "backfill/clicks", "a1"))
    assert text.startswith("Name:               clicks\n")
    assert "\n\nInstance:           a1\n" in text
    both = ok(cli("describe", "instances", "a1", "a2"))
    assert both.count("Instance:  ") == 2
    assert ok(cli("describe", "bf", "clicks")).startswith("Name:               clicks\n")


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ("fix-orders",),
            "error: no instance 'fix-orders' in {path}",
            "  hint: fix-orders is a backfill: say backfill/fix-orders",
        ),
        (
            ("backfill/fix",),
            "error: no backfill 'fix' in {path}",
            "  hint: backfillctl get backfills lists them",
        ),
        (
            ("backfill/click",),
            "error: no backfill 'click' in {path}",
            "  hint: did you mean 'clicks'?",
        ),
        (
            ("instance/zz",),
            "error: no instance 'zz' in {path}",
            "  hint: backfillctl get instances lists them",
        ),
        (
            ("pod/x",),
            "error: cannot describe 'pod/x'",
            "  hint: name backfill/NAME or instance/ID (or a bare instance id)",
        ),
        (
            ("backfill",),
            "error: describe backfill needs a name",
            "  hint: backfillctl describe backfill/NAME or instance/ID",
        ),
        # nothing is printed when a later name is unknown
        (
            ("a1", "nope"),
            "error: no instance 'nope' in {path}",
            "  hint: backfillctl get instances lists them",
        ),
    ],
)
def test_describe_usage_errors(cli: Cli, args: tuple[str, ...], message: str, hint: str) -> None:
    assert usage_error(cli("describe", *args)) == [message.format(path=cli.path), hint]


# -- logs ------------------------------------------------------------------------------------


def test_logs_print_the_latest_attempt(cli: Cli) -> None:
    assert ok(cli("logs", "a1")) == "loading 2024-03-01\ndone\n"
    assert ok(cli("logs", "instance/a1", "--attempt", "1")) == "loading 2024-03-01\ndone\n"


def test_logs_of_an_earlier_attempt(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    save(store, backfill("r"), instance("r1", bf="r"))
    for n in (1, 2):
        (tmp_path / f"r1.{n}.log").write_text(f"attempt {n}\n")
    attempt(store, "r1", start=T0, end=T0 + 1, code=1, log=str(tmp_path / "r1.1.log"), retry=True)
    attempt(store, "r1", start=T0 + 2, end=T0 + 3, log=str(tmp_path / "r1.2.log"))
    state = ("--state-file", str(tmp_path / "s.db"))

    assert ok(run("logs", "r1", *state)) == "attempt 2\n"
    assert ok(run("logs", "r1", "--attempt", "1", *state)) == "attempt 1\n"
    assert usage_error(run("logs", "r1", "--attempt", "3", *state)) == [
        "error: instance r1 has no attempt 3",
        "  hint: its attempts are 1, 2",
    ]


def test_logs_of_an_instance_that_has_not_run(cli: Cli) -> None:
    assert usage_error(cli("logs", "b2")) == [
        "error: instance b2 has not run yet (it is pending)",
        "  hint: backfillctl describe instance/b2 says why it waits",
    ]
    assert usage_error(cli("logs", "zz")) == [
        f"error: no instance 'zz' in {cli.path}",
        "  hint: backfillctl get instances lists them",
    ]


def test_logs_without_output_say_so_on_stderr(cli: Cli) -> None:
    result = cli("logs", "a3")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == (
        f"note: attempt 1 of a3 has no output ({cli.logs / 'a3.1.log'} does not exist)\n"
    )


def test_follow_prints_what_is_added_until_the_attempt_ends(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = cli.logs / "a3.1.log"
    log.write_text("start\n")
    steps = [
        lambda: None,  # nothing new
        lambda: log.write_text("start\nrow 1\n"),
        lambda: (log.write_text("start\nrow 1\nrow 2\n"), finish_a3(cli)),
    ]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        steps[len(slept) - 1]()

    monkeypatch.setattr(logs, "_sleep", sleep)

    assert ok(cli("logs", "a3", "-f", "--follow-limit", "10")) == "start\nrow 1\nrow 2\n"
    assert slept == [0.5, 0.5, 0.5]  # it stopped when the attempt ended


def test_follow_stops_at_its_limit_and_reprints_a_log_that_was_cut(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = cli.logs / "a3.1.log"
    log.write_text("old old old\n")
    monkeypatch.setattr(logs, "_sleep", lambda seconds: log.write_text("cut\n"))

    assert ok(cli("logs", "a3", "-f", "--follow-limit", "2")) == "old old old\ncut\n"


def test_follow_of_a_finished_attempt_prints_once(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(seconds: float) -> None:
        raise AssertionError("a finished attempt is not followed")

    monkeypatch.setattr(logs, "_sleep", never)
    assert ok(cli("logs", "a1", "-f")) == "loading 2024-03-01\ndone\n"


def test_describe_links_to_the_dashboard_when_told_where_it_is(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKFILLCTL_DASHBOARD", "https://backfills.example.com/")
    backfill_page = ok(cli("describe", "backfill/fix-orders")).splitlines()
    assert "Dashboard:          https://backfills.example.com/backfills/fix-orders" in backfill_page
    instance_page = ok(cli("describe", "instance/a1")).splitlines()
    assert "Dashboard:          https://backfills.example.com/instances/a1" in instance_page
    monkeypatch.delenv("BACKFILLCTL_DASHBOARD")
    assert "Dashboard:" not in ok(cli("describe", "backfill/fix-orders"))


def test_describe_shows_a_moved_checkout_s_log_where_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident = ran_checkout(tmp_path / "a", monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").rename(tmp_path / "c")
    monkeypatch.chdir(tmp_path / "c")

    shown = run("describe", f"instance/{ident}")

    assert shown.exit_code == 0, shown.stderr
    (log,) = (tmp_path / "c" / ".backfillctl" / "runs").rglob("*.log")
    assert str(log) in shown.stdout
    assert str(tmp_path / "a" / ".backfillctl") not in shown.stdout


def test_an_instance_named_where_a_backfill_is_wanted_is_told_apart(cli: Cli) -> None:
    """`wait instance/ID` (as `kubectl wait pod/x`): wait, describe backfill/ and events
    watch backfills; the hint names the instance's."""
    for args, named in (
        (("wait", "instance/a1", "--for=condition=Succeeded"), "instance/a1"),
        (("wait", "a1", "--for=condition=Succeeded"), "a1"),
        (("describe", "backfill/a1"), "a1"),
    ):
        assert usage_error(cli(*args)) == [
            f"error: no backfill {named!r} in {cli.path}",
            "  hint: a1 is an instance of backfill/fix-orders: say backfill/fix-orders "
            "(or instance/a1 where instances are taken)",
        ], args
